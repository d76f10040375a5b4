"""The DICOM router end to end, with real peers: dcmtk storescu/echoscu -> eai -> storescp.

The engine runs on a thread (``tests.engine_harness.EngineThread``) with a
``dicom`` listener, two ``dicom`` destinations (storescp ``plain`` without
marking, storescp ``marked`` with the route's coercion) and the peers of
``standins.dicom``.

Test set for "every file pydicom can read": pydicom's bundled test files that are
DICOM Part-10 files of a standard storage SOP class which pydicom reads without
a warning, less the two it ships truncated on purpose (``*_truncated.dcm``,
used for the refusal test). Left out, by that rule: files without File Meta
Information (``no_meta.dcm``, ``ExplVR_*NoMeta.dcm``), DICOMDIRs and files without
a SOP class (not storable), non-DICOM files (.json, .icc, .gz), and
``SC_rgb_jpeg.dcm`` (explicit VR transfer syntax, implicit VR encoding: pydicom
warns). Files sharing a SOP Instance UID are sent under different calling AE
titles, as the router answers a re-sent instance (same AE, same UID) success
without forwarding it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner
from pydicom import Dataset
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.uid import generate_uid
from pynetdicom import StoragePresentationContexts

from dicom_router.client import Peer, echo, send_files
from dicom_router.reference import InstanceRef
from eai.cli import cli
from standins.dicom import (
    TRAILING_PADDING,
    ct_small_path,
    dataset_bytes,
    echoscu,
    make_ct_series,
    storescu,
)
from tests._dicom_routes import CALLERS, HOST, deliveries, router
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


# storescu proposes uncompressed transfer syntaxes unless told (dcmtk 3.6 options).
PROPOSE = {
    "1.2.840.10008.1.2": ("-xi",),
    "1.2.840.10008.1.2.2": ("-xb",),
    "1.2.840.10008.1.2.4.50": ("-xy",),
    "1.2.840.10008.1.2.4.51": ("-xx",),
    "1.2.840.10008.1.2.4.70": ("-xs",),
    "1.2.840.10008.1.2.4.80": ("-xt",),
    "1.2.840.10008.1.2.4.81": ("-xu",),
    "1.2.840.10008.1.2.4.90": ("-xv",),
    "1.2.840.10008.1.2.4.91": ("-xw",),
    "1.2.840.10008.1.2.5": ("-xr",),
    "1.2.840.10008.1.2.1.99": ("-xd",),
}

# Elements dcmtk's storescu changes when it reads and sends these files (seen with
# dcmtk 3.6.7: it rewrites Pixel Representation (0028,0103) from the pixel data);
# the router's own guarantee, byte-identical datasets between what it receives and
# what it forwards, is checked for every file.
CHANGED_BY_STORESCU: dict[str, list[str]] = {
    "693_J2KI.dcm": ["(00280103)"],
    "JPEG-lossy.dcm": ["(00280103)"],
    "JPEG2000-embedded-sequence-delimiter.dcm": ["(00280103)"],
    "JPEG2000.dcm": ["(00280103)"],
    "JPGExtended.dcm": ["(00280103)"],
    "SC_rgb_gdcm_KY.dcm": ["(00280103)"],
    "examples_jpeg2k.dcm": ["(00280103)"],
    "examples_palette.dcm": ["(00280103)"],
}

COERCED = {
    0x00080080: "CHU-X 750712184",
    0x00100021: "ASIP-SANTE-INS-NIR",
    0x00090010: "EAI ORIGIN",
    0x00091001: "750712184",
}
COERCED_TAGS = {*COERCED, 0x00101002}


def sendable_test_files() -> list[Path]:
    storage = {cx.abstract_syntax for cx in StoragePresentationContexts}
    out = []
    for name in get_testdata_files():
        path = Path(name)
        if not path.is_file() or "truncated" in path.name:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not readable without complaint: out of the set
            continue
        if "TransferSyntaxUID" not in ds.file_meta or ds.get("SOPClassUID") not in storage:
            continue
        if "SOPInstanceUID" not in ds:
            continue
        out.append(path)
    return sorted(out)


def spooled(tmp: Path) -> list[Path]:
    return sorted((tmp / "spool" / "instances").iterdir())


def decrypted_spool(eng: EngineThread, tmp: Path) -> list[Path]:
    """Clear copies (in ``tmp/clear``) of the spooled instances, decrypted with the data
    keys of their journal references, under their spool names."""
    from sqlalchemy import select

    from eai.store.schema import messages

    store = eng.engine.store
    assert store is not None
    out = tmp / "clear"
    out.mkdir(exist_ok=True)
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.payload).where(
                messages.c.content_type == "dicom", messages.c.status != "rejected"
            )
        ).all()
    for (sealed,) in rows:
        ref = InstanceRef.from_json(store.cipher.open(sealed))
        if ref.path.exists():
            (out / ref.spool).write_bytes(ref.read())
    return sorted(out.iterdir())


def differences(a: Dataset, b: Dataset, skip: set[int] = frozenset(), at: str = "") -> list[str]:
    """Elements that differ between ``a`` and ``b`` (decoded values, recursively into
    sequences; bytes values such as the pixel data compared byte for byte). Group
    lengths (gggg,0000) and the trailing padding are ignored: dcmtk's storescu
    recomputes the first and drops the second when it sends."""

    def keep(tag: int) -> bool:
        return tag & 0xFFFF != 0 and tag != TRAILING_PADDING and tag not in skip

    tags_a = {int(t) for t in a.keys() if keep(int(t))}
    tags_b = {int(t) for t in b.keys() if keep(int(t))}
    out = [f"{at}({t:08X}) only on one side" for t in sorted(tags_a ^ tags_b)]
    for tag in sorted(tags_a & tags_b):
        where = f"{at}({tag:08X})"
        ra, rb = a.get_item(tag), b.get_item(tag)
        if _vr(tag, ra) == "SQ" or _vr(tag, rb) == "SQ":
            sa, sb = a[tag].value, b[tag].value
            if len(sa) != len(sb):
                out.append(f"{where} item count")
                continue
            for i, (ia, ib) in enumerate(zip(sa, sb, strict=True)):
                out.extend(differences(ia, ib, set(), f"{where}[{i}]"))
        elif isinstance(ra, RawDataElement) and isinstance(rb, RawDataElement):
            if _raw(ra) != _raw(rb):
                out.append(where)
        elif a[tag].value != b[tag].value:  # decoded on one side already: compare values
            out.append(where)
    return out


def _vr(tag: int, elem: Any) -> str:
    vr = getattr(elem, "VR", None)
    if vr:
        return str(vr)
    try:
        return str(pydicom.datadict.dictionary_VR(tag))
    except KeyError:
        return "UN"


def _raw(elem: Any) -> bytes:
    """The value bytes as encoded (undecoded: no validation warning on odd values)."""
    value = elem.value
    if isinstance(value, bytes):
        return value.rstrip(b"\x00 ")
    return repr(value).encode()


def test_echo_and_association_refusals(tmp_path: Path) -> None:
    with router(tmp_path) as (eng, _plain, _marked, _cfg):
        port = eng.port("img")
        rc, out = echoscu(HOST, port, "EAI")
        assert rc == 0, out
        rc, out = echoscu(HOST, port, "EAI", calling_ae="INTRUDER")
        assert rc != 0 and "Calling AE Title Not Recognized" in out, out
        rc, out = echoscu(HOST, port, "OTHERAE")
        assert rc != 0 and "Called AE Title Not Recognized" in out, out
        assert echo(Peer("EAI", HOST, port), "EAI") == 0
        result = CliRunner().invoke(cli, ["dicom", "echo", f"EAI@{HOST}:{port}"])
        assert result.exit_code == 0 and "0x0000" in result.output, result.output
        result = CliRunner().invoke(
            cli, ["dicom", "echo", "--calling-ae", "INTRUDER", f"EAI@{HOST}:{port}"]
        )
        assert result.exit_code == 1


def test_every_pydicom_file_arrives_as_received_and_marked(tmp_path: Path) -> None:
    files = sendable_test_files()
    assert len(files) > 140
    # Group the files so that no SOP Instance UID repeats within a calling AE.
    groups: list[list[Path]] = []
    seen: list[set[str]] = []
    originals: dict[tuple[str, str], Path] = {}
    for path in files:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        i = next((k for k, uids in enumerate(seen) if uid not in uids), len(seen))
        if i == len(seen):
            seen.append(set())
            groups.append([])
        seen[i].add(uid)
        groups[i].append(path)
        originals[(CALLERS[i], uid)] = path
    assert len(groups) <= len(CALLERS)
    with router(tmp_path, marked_callers=CALLERS) as (eng, plain, marked, _cfg):
        port = eng.port("img")
        by_dcmtk = 0
        for ae, group in zip(CALLERS, groups, strict=False):
            failed = []
            for path in group:  # one association per file, proposing its transfer syntax
                ts = str(pydicom.filereader.read_file_meta_info(path).TransferSyntaxUID)
                rc, out = storescu(
                    HOST, port, [path], "EAI", calling_ae=ae, extra_args=PROPOSE.get(ts, ())
                )
                if rc != 0:
                    failed.append(path)
            by_dcmtk += len(group) - len(failed)
            # Files dcmtk cannot read or send as they are go with our own SCU (the
            # file's dataset bytes as they are, in their transfer syntax).
            results = send_files(Peer("EAI", HOST, port), failed, calling_ae=ae)
            assert all(r.ok for r in results), [(r.path.name, r.detail) for r in results]
            print(ae, "storescu failed on", sorted(p.name for p in failed))
        assert by_dcmtk > 0.9 * len(files)
        n = len(files)
        got_plain = plain.wait_files(n, timeout=120)
        got_marked = marked.wait_files(n, timeout=120)
        assert len(got_plain) == n and len(got_marked) == n
        assert len(spooled(tmp_path)) == n
        spool = decrypted_spool(eng, tmp_path)
        assert len(spool) == n

        # As received: what storescp got is byte for byte what eai was sent.
        assert Counter(dataset_bytes(p) for p in got_plain) == Counter(
            dataset_bytes(p) for p in spool
        )
        # What eai was sent is the original, element by element (storescu drops the
        # trailing padding), pixel data included.
        by_key: dict[tuple[str, str], Path] = {}
        for p in spool:
            meta = pydicom.filereader.read_file_meta_info(p)
            by_key[
                (str(meta.SourceApplicationEntityTitle).strip(), meta.MediaStorageSOPInstanceUID)
            ] = p
        assert set(by_key) == set(originals)
        changed = {}
        for key, original in originals.items():
            diff = differences(pydicom.dcmread(original), pydicom.dcmread(by_key[key]))
            if diff:
                changed[original.name] = diff
        assert all(CHANGED_BY_STORESCU.get(name) == d for name, d in changed.items()), changed

        # Marked: coerced tags carry the route's values, every other element is as received.
        sent_by_uid: dict[str, list[Path]] = defaultdict(list)
        for p in spool:
            uid = pydicom.filereader.read_file_meta_info(p).MediaStorageSOPInstanceUID
            sent_by_uid[uid].append(p)
        for p in got_marked:
            ds = pydicom.dcmread(p)
            for tag, value in COERCED.items():
                got = ds[tag].value  # a private tag in implicit VR reads back as UN bytes
                got = got.decode().strip() if isinstance(got, bytes) else got
                assert got == value, (p.name, hex(tag))
            assert ds.OtherPatientIDsSequence[0].PatientID == "IPP-42"
            diffs = [
                differences(pydicom.dcmread(p), pydicom.dcmread(s), COERCED_TAGS)
                for s in sent_by_uid[ds.SOPInstanceUID]
            ]
            assert any(not d for d in diffs), (p.name, diffs)


def _bogus_uid_file(tmp: Path) -> Path:
    """CT_small with a SOP Instance UID aiming outside the spool (same length)."""
    original = get_testdata_file("CT_small.dcm")
    assert original is not None
    raw = Path(original).read_bytes()
    uid = pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID.encode()
    bogus = b"1.2.3/" + b"../" * 20
    bogus = (bogus + b"x" * len(uid))[: len(uid)]
    path = tmp / "bogus.dcm"
    path.write_bytes(raw.replace(uid, bogus))
    return path


def _oversized_file(tmp: Path) -> Path:
    """A CT of 800 x 800 16-bit pixels (1.28 MB): over the listener's max_instance_size."""
    ds = pydicom.dcmread(ct_small_path())
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = 800
    ds.PixelData = bytes(800 * 800 * 2)
    path = tmp / "oversized.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _status(results: list[Any]) -> list[str]:
    return [r.detail for r in results]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # pydicom, on ../
def test_bad_input_is_refused_and_the_scp_keeps_serving(tmp_path: Path) -> None:
    with router(tmp_path) as (eng, plain, _marked, _cfg):
        port = eng.port("img")
        peer = Peer("EAI", HOST, port)
        truncated = get_testdata_file("MR_truncated.dcm")
        assert truncated is not None
        assert _status(send_files(peer, [Path(truncated)], "STORESCU")) == ["0xC000"]
        assert _status(send_files(peer, [_bogus_uid_file(tmp_path)], "STORESCU")) == ["0xC001"]
        # Larger than max_instance_size: read, dropped, refused; nothing kept, nothing journaled.
        assert _status(send_files(peer, [_oversized_file(tmp_path)], "STORESCU")) == ["0xA700"]
        assert spooled(tmp_path) == []
        quarantine = sorted((tmp_path / "spool" / "quarantine").iterdir())
        assert len(quarantine) == 4  # two instances, each with its reason
        reasons = " ".join(p.read_text() for p in quarantine if p.name.endswith(".reason.txt"))
        assert "truncated" in reasons and "not UIDs" in reasons
        assert not list(Path("/").glob("eai-escape*"))

        # A PDU announcing gigabytes: A-ABORT, connection closed, nothing read.
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(bytes([0x01, 0x00]) + (0xFFFFFFF0).to_bytes(4, "big") + b"\x00" * 64)
            answer = sock.recv(64)
            assert answer[:1] == b"\x07", answer  # A-ABORT
            sock.settimeout(5)
            assert sock.recv(64) == b""
        # An association that never sends: closed after acse_timeout (2 s); others served.
        with socket.create_connection((HOST, port), timeout=10) as idle:
            rc, out = echoscu(HOST, port, "EAI")
            assert rc == 0, out
            started = time.monotonic()
            assert idle.recv(64) in (b"", bytes([0x07]))
            assert time.monotonic() - started < 9
        rc, out = storescu(HOST, port, [ct_small_path()], "EAI")
        assert rc == 0, out
        plain.wait_files(1)

    # The journal keeps the refusals, with their status and the quarantined file.
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["messages", "list", "-c", str(tmp_path / "routes.yaml"), "--status", "rejected", "--json"],
    )
    assert result.exit_code == 0, result.output
    rejected = json.loads(result.output)
    assert sorted(m["reject_reason"][:6] for m in rejected) == ["0xC000", "0xC001"]
    assert all(m["message_type"] == "DICOM^C-STORE" for m in rejected)


def test_unwritable_spool_answers_out_of_resources(tmp_path: Path) -> None:
    with router(tmp_path) as (eng, _plain, _marked, _cfg):
        port = eng.port("img")
        peer = Peer("EAI", HOST, port)
        series = make_ct_series(2, tmp_path / "ct")
        tmpdir = tmp_path / "spool" / "tmp"
        tmpdir.rmdir()
        tmpdir.write_bytes(b"")  # the spool cannot be written (also as root)
        assert _status(send_files(peer, series[:1], "STORESCU")) == ["0xA700"]
        tmpdir.unlink()
        tmpdir.mkdir()
        assert _status(send_files(peer, series[1:], "STORESCU")) == ["0x0000"]
        assert len(spooled(tmp_path)) == 1


def test_spool_fsync_failure_after_the_rows_are_written_answers_out_of_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool file's fsync runs while the writer writes the journal rows; when it
    fails, the rows are rolled back, the answer is 0xA700 and nothing is left."""
    from sqlalchemy import func, select

    from eai.store.schema import messages

    real = os.fsync
    spool_tmp = str(tmp_path / "spool" / "tmp")

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(spool_tmp):
            raise OSError(5, "Input/output error")
        real(fd)

    with router(tmp_path) as (eng, plain, _marked, _cfg):
        peer = Peer("EAI", HOST, eng.port("img"))
        series = make_ct_series(2, tmp_path / "ct")
        monkeypatch.setattr(os, "fsync", failing)
        assert _status(send_files(peer, series[:1], "STORESCU")) == ["0xA700"]
        monkeypatch.undo()
        assert spooled(tmp_path) == [] and list((tmp_path / "spool" / "tmp").iterdir()) == []
        store = eng.engine.store
        assert store is not None
        count = select(func.count()).select_from(messages)
        with store.engine.connect() as c:
            assert c.execute(count).scalar_one() == 0
        # the same instance again, and the next: both journaled, spooled and forwarded
        assert _status(send_files(peer, series, "STORESCU")) == ["0x0000", "0x0000"]
        with store.engine.connect() as c:
            assert c.execute(count).scalar_one() == 2
        plain.wait_files(2)


def test_destination_down_mid_study_then_back(tmp_path: Path) -> None:
    n = 30
    series = make_ct_series(n, tmp_path / "ct")
    with router(tmp_path) as (eng, plain, _marked, cfg):
        port = eng.port("img")
        rc, out = storescu(HOST, port, series[:10], "EAI")
        assert rc == 0, out
        plain.wait_files(10)
        plain.stop()
        rc, out = storescu(HOST, port, series[10:], "EAI")  # accepted while the PACS is down
        assert rc == 0, out
        time.sleep(1.5)  # a few failed attempts, retried with backoff
        plain.restart()
        files = plain.wait_files(n, timeout=60)
        time.sleep(1.0)
        files = plain.files()
        arrived = [
            pydicom.dcmread(p, stop_before_pixels=True)
            for p in sorted(files, key=lambda p: p.stat().st_mtime_ns)
        ]
        numbers = [int(ds.InstanceNumber) for ds in arrived]
        assert sorted(set(numbers)) == list(range(1, n + 1))
        assert all(a != b for a, b in zip(numbers, numbers[1:], strict=False)), numbers
        assert numbers == sorted(numbers), numbers  # per-study order kept

        # eai dicom queue: the study, all delivered.
        runner = CliRunner()
        result = runner.invoke(cli, ["dicom", "queue", "-c", str(cfg), "--json"])
        assert result.exit_code == 0, result.output
        (row,) = [r for r in json.loads(result.output) if r["destination"] == "plain"]
        assert row["delivered"] == n and row["pending"] == row["dead"] == 0
        assert row["study_instance_uid"] == str(arrived[0].StudyInstanceUID)

        # eai resend: the same delivery payload goes again.
        result = runner.invoke(cli, ["messages", "list", "-c", str(cfg), "--json", "--limit", "1"])
        last = json.loads(result.output)[0]
        assert (
            last["message_type"] == "DICOM^CT" and last["control_id"] == arrived[-1].SOPInstanceUID
        )
        delivery = next(d for d in last["deliveries"] if d["destination"] == "plain")
        result = runner.invoke(cli, ["resend", "-c", str(cfg), str(delivery["id"])])
        assert result.exit_code == 0, result.output
        files = plain.wait_files(n + 1, timeout=30)
        newest = max(files, key=lambda p: p.stat().st_mtime_ns)
        assert pydicom.dcmread(newest).SOPInstanceUID == last["control_id"]

        # eai dicom send, to the router itself, from a directory.
        result = runner.invoke(
            cli,
            ["dicom", "send", "--calling-ae", "MOD1", f"EAI@{HOST}:{port}", str(tmp_path / "ct")],
        )
        assert result.exit_code == 0, result.output
        assert f"{n} sent, 0 failed" in result.output


def test_retention_removes_delivered_instances(tmp_path: Path) -> None:
    from dicom_router.retention import retention_pass

    with router(tmp_path) as (eng, plain, _marked, _cfg):
        port = eng.port("img")
        rc, out = storescu(HOST, port, make_ct_series(3, tmp_path / "ct"), "EAI")
        assert rc == 0, out
        plain.wait_files(3)
        lst = eng.config.listeners[0]
        assert eng.engine.store is not None
        from eai._engine_ingest import JournalView

        view = JournalView(eng.engine.store)
        deadline = time.monotonic() + 20
        removed = 0
        while time.monotonic() < deadline and removed < 3:
            time.sleep(0.3)
            loop = eng._loop
            assert loop is not None
            import asyncio

            report = asyncio.run_coroutine_threadsafe(
                retention_pass(lst, view, now=None),
                loop,  # type: ignore[arg-type]
            ).result(10)
            removed += report.removed
        assert removed == 3 and spooled(tmp_path) == []


def test_nagle_is_off_on_both_sides(tmp_path: Path) -> None:
    from pynetdicom import AE, build_context
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    from dicom_router._store_scu import StoreScu
    from dicom_router.forward import DicomDestination, DicomDestinationConfig
    from dicom_router.scp import DicomListener

    with router(tmp_path) as (eng, plain, _marked, _cfg):
        port = eng.port("img")
        ae = AE("STORESCU")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 10
        assoc = ae.associate(HOST, port, [build_context(Verification)], ae_title="EAI")
        try:
            assert assoc.is_established
            listener = eng.engine.listeners["img"]
            assert isinstance(listener, DicomListener) and listener._server is not None
            (server_side,) = listener._server.active_associations
            raw = server_side.sock
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            assoc.release()
        rc, out = storescu(HOST, port, [ct_small_path()], "EAI")
        assert rc == 0, out
        plain.wait_files(1)
        dest = eng.engine.workers["plain"]._dest
        assert isinstance(dest, DicomDestination) and dest.pid is not None
        # The forwarding process keeps its association for the next one.
        assert connections_to(dest.pid, plain.port) == 1
        # Its sockets are StoreScu's (dicom_router._forward_child): the same sender here,
        # with the destination's configuration and the reference the journal holds.
        (ref,) = journaled_refs(eng)
        config = next(d for d in eng.config.destinations if d.name == "plain")
        assert isinstance(config, DicomDestinationConfig)
        scu = StoreScu(config)
        try:
            assert scu.send(scu.links[0], ref).detail == "0x0000"
            link = scu.links[0]
            assert link.assoc is not None and link.assoc.established  # kept for the next one
            sent = link.assoc.sock
            assert sent.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            scu.release_idle(0.0)
        plain.wait_files(2)


def connections_to(pid: int, port: int) -> int:
    """How many established TCP connections process ``pid`` has to 127.0.0.1:``port``
    (its socket inodes, looked up in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if fields[3] == "01" and remote_port == port and fields[9] in inodes:
            count += 1
    return count


def journaled_refs(eng: EngineThread) -> list[InstanceRef]:
    """The references of the instances journaled (decrypted)."""
    from sqlalchemy import select

    from eai.store.schema import messages

    store = eng.engine.store
    assert store is not None
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.payload).where(
                messages.c.content_type == "dicom", messages.c.status != "rejected"
            )
        ).all()
    return [InstanceRef.from_json(store.cipher.open(sealed)) for (sealed,) in rows]


def test_spool_is_encrypted_and_a_tampered_file_is_never_sent(tmp_path: Path) -> None:
    series = make_ct_series(2, tmp_path / "ct")
    originals = [pydicom.dcmread(p, stop_before_pixels=True) for p in series]
    with router(tmp_path) as (eng, plain, _marked, cfg):
        port = eng.port("img")
        plain.stop()  # kept in the spool until the PACS is back
        rc, out = storescu(HOST, port, series, "EAI")
        assert rc == 0, out
        files = spooled(tmp_path)
        assert len(files) == 2
        for path in files:
            data = path.read_bytes()
            for ds in originals:
                for clear in (str(ds.PatientName), ds.PatientID, ds.SOPInstanceUID):
                    assert clear.encode() not in data, clear
            assert b"DICM" not in data
        # One file altered on disk (a byte of its pixel data): the forwarder refuses it.
        victim = max(files, key=lambda p: p.stat().st_size)
        sealed = bytearray(victim.read_bytes())
        sealed[len(sealed) // 2] ^= 0x01
        victim.write_bytes(bytes(sealed))
        plain.restart()
        deadline = time.monotonic() + 60
        states: list[str] = []
        while time.monotonic() < deadline:
            dl = [d for d in deliveries(cfg) if d["destination"] == "plain"]
            states = sorted(d["status"] for d in dl)
            if states == ["dead", "delivered"]:
                break
            time.sleep(0.2)
        assert states == ["dead", "delivered"], states
        (dead,) = [d for d in dl if d["status"] == "dead"]
        assert f"spool file {victim.name} cannot be decrypted" in dead["last_error"]
        (got,) = plain.wait_files(1)
        sent = pydicom.dcmread(got)
        assert sent.SOPInstanceUID in {ds.SOPInstanceUID for ds in originals}
        intact = next(p for p in series if pydicom.dcmread(p).SOPInstanceUID == sent.SOPInstanceUID)
        assert dataset_bytes(got) == dataset_bytes(intact)
        # eai resend of the dead delivery fails again, the same way, and sends nothing.
        result = CliRunner().invoke(cli, ["resend", "-c", str(cfg), str(dead["id"])])
        assert result.exit_code == 0, result.output
        while time.monotonic() < deadline:
            again = [d for d in deliveries(cfg) if d["destination"] == "plain"]
            if sum(d["status"] == "dead" for d in again) == 2:
                break
            time.sleep(0.2)
        assert sum(d["status"] == "dead" for d in again) == 2, again
        assert len(plain.files()) == 1
