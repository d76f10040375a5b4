"""dcmtk's one-shot SCUs (``storescu``, ``echoscu``) and DICOM test data (CT series from pydicom).

Touches: subprocesses, files (writes the series it makes).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from standins.dicom._common import (
    TIMEOUT_RC,
    TRAILING_PADDING,
    DicomPeerUnavailable,
    dcmtk_env,
    require_binary,
)

# -- one-shot SCUs ------------------------------------------------------------------


def _run_tool(cmd: list[str], timeout: float) -> tuple[int, str]:
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dcmtk_env(),
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        text = out.decode(errors="replace")
        return TIMEOUT_RC, f"{text}\n[{Path(cmd[0]).name} killed after {timeout:g}s timeout]"
    finally:
        if proc.poll() is None:  # an exception other than the timeout
            proc.kill()
            proc.wait()


def storescu(
    host: str,
    port: int,
    files: Iterable[Path | str],
    called_ae: str,
    calling_ae: str = "STORESCU",
    extra_args: Sequence[str] = (),
    timeout: float = 120.0,
) -> tuple[int, str]:
    """dcmtk ``storescu``: send ``files`` in ONE association; return (returncode, output).

    Directories among ``files`` are scanned recursively (``+sd +r``). storescu
    proposes every uncompressed transfer syntax plus the one of each file (one
    presentation context per SOP class and transfer syntax, at most 128: for many
    different SOP classes in one call, pass ``extra_args=("-R",)`` to propose only
    what the files need), and stops at the first failed store unless
    ``extra_args`` has ``-nh``. The returncode is :data:`TIMEOUT_RC` when it was
    killed after ``timeout`` seconds.
    """
    paths = [str(f) for f in files]
    cmd = [require_binary("storescu"), "-aet", calling_ae, "-aec", called_ae]
    if any(Path(p).is_dir() for p in paths):
        cmd += ["+sd", "+r"]
    cmd += [*extra_args, host, str(port), *paths]
    return _run_tool(cmd, timeout)


def echoscu(
    host: str,
    port: int,
    called_ae: str,
    calling_ae: str = "ECHOSCU",
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> tuple[int, str]:
    """dcmtk ``echoscu`` (C-ECHO); return (returncode, output)."""
    cmd = [require_binary("echoscu"), "-aet", calling_ae, "-aec", called_ae]
    cmd += [*extra_args, host, str(port)]
    return _run_tool(cmd, timeout)


# -- test data ----------------------------------------------------------------------

_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


def dataset_bytes(path: Path | str) -> bytes:
    """The bytes of a DICOM file after its preamble and file meta information (group
    0002, always explicit VR little endian): the dataset as it was sent or received.

    storescp (``+B``) writes its own file meta before the received dataset, so
    compare this, not whole files. A file without the ``DICM`` prefix is returned
    whole (a bare dataset).
    """
    raw = Path(path).read_bytes()
    if raw[128:132] != b"DICM":
        return raw
    pos = 132
    while pos + 8 <= len(raw) and raw[pos : pos + 2] == b"\x02\x00":
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length = int.from_bytes(raw[pos + 8 : pos + 12], "little")
            pos += 12 + length
        else:
            length = int.from_bytes(raw[pos + 6 : pos + 8], "little")
            pos += 8 + length
    return raw[pos:]


def ct_small_path() -> Path:
    """pydicom's bundled ``CT_small.dcm`` (128x128 16-bit CT, explicit VR LE, ~39 kB)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        raise DicomPeerUnavailable("pydicom's test file CT_small.dcm is missing")
    return Path(str(path))


def make_ct_series(
    n: int, out_dir: Path | str, *, studies: int = 1, prefix: str = "ct"
) -> list[Path]:
    """Write ``n`` copies of ``CT_small.dcm`` to ``out_dir``; return their paths in order.

    Every copy gets a new SOP Instance UID (also in the file meta) and
    InstanceNumber ``1..``; the copies are spread over ``studies`` new studies
    (consecutive blocks), one new series per study. Files are
    ``<prefix>_<index:05d>.dcm``; the transfer syntax and pixel data are those of
    the original, the trailing padding element (FFFC,FFFC) is removed.
    """
    import pydicom
    from pydicom.uid import generate_uid

    if n < 0 or studies < 1:
        raise ValueError("n must be >= 0 and studies >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(ct_small_path())
    # CT_small ends with a Data Set Trailing Padding element, which dcmtk's storescu
    # drops when it sends: without it, the dataset as written here is byte for byte
    # what goes on the wire.
    if TRAILING_PADDING in ds:
        del ds[TRAILING_PADDING]
    per_study = max(1, -(-n // studies))
    paths: list[Path] = []
    for i in range(n):
        if i % per_study == 0:
            ds.StudyInstanceUID = generate_uid()
            ds.SeriesInstanceUID = generate_uid()
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i + 1
        path = out / f"{prefix}_{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
