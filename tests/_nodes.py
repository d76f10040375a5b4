"""Engine nodes sharing one database in the multi-node tests: their routes, journal
entries, MLLP senders that alternate between the nodes, and HAProxy in front of them.

Touches: files (routes.yaml and haproxy.cfg under the test's tmp_path), network (MLLP
to 127.0.0.1), processes (HAProxy).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from hl7.client import MLLPClient

from eai.messages import JournalEntry
from tests._mllp import msa
from tests.engine_harness import adt, write_routes

LISTENER = "chu-x-adt"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

HAPROXY_CFG = """
global
    maxconn 512
defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
frontend mllp
    bind 127.0.0.1:{front}
    default_backend nodes
backend nodes
    balance roundrobin
    # the health check: a TCP connect to each node's MLLP port (no /readyz yet)
    default-server inter 200ms fall 1 rise 2
{servers}
"""


def haproxy_config(front: int, ports: Sequence[int]) -> str:
    """HAProxy in TCP mode on 127.0.0.1:``front``, round robin over the nodes' MLLP
    listeners at ``ports`` (servers ``a``, ``b``...), health-checked by a TCP connect."""
    servers = "\n".join(
        f"    server {chr(ord('a') + i)} 127.0.0.1:{port} check" for i, port in enumerate(ports)
    )
    return HAPROXY_CFG.format(front=front, servers=servers)


def start_haproxy(cfg: Path, log: Path) -> tuple[subprocess.Popen[bytes], BinaryIO]:
    """Runs HAProxy in the foreground on ``cfg``, its output to ``log``; returns the
    process and the log file (the caller terminates the one, closes the other)."""
    out = log.open("wb")
    proc = subprocess.Popen(
        [HAPROXY, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL, stdout=out, stderr=out
    )
    return proc, out


def now() -> datetime:
    """The store's clock: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def node_routes(tmp: Path, home: str, sink_port: int, database: str, engine: str = "") -> Path:
    """Sets up one node's routes.yaml: own data_dir ``tmp/home``, shared ``database``;
    ``engine``: extra lines of the engine section (two-space indented)."""
    (tmp / home).mkdir()
    path = write_routes(tmp / home, sink_port, database=database, connections=4)
    text = path.read_text()
    assert "\nengine:\n" in text
    text = text.replace("\nengine:\n", "\nengine:\n" + engine, 1)
    # Every test sender connects from 127.0.0.1: ten of them exceed the per-address cap.
    cap = "    test_feed: true"
    assert cap in text
    path.write_text(text.replace(cap, cap + "\n    max_connections_per_peer: 32", 1))
    return path


def entry(cid: str, patient: str) -> JournalEntry:
    """What the MLLP listener journals for ``adt(cid, patient)``."""
    return JournalEntry(
        listener=LISTENER,
        payload=adt(cid, patient),
        received_at=datetime.now(UTC),
        dedup_key=f"{LISTENER}|APP|CHU-X|{cid}",
        control_id=cid,
        message_type="ADT^A01",
        sending_facility="CHU-X",
        ack=f"MSH|^~\\&|\rMSA|AA|{cid}".encode(),
    )


def send_alternating(
    ports: Sequence[int], patients: Sequence[str], per_patient: int
) -> dict[str, list[str]]:
    """One sender thread per patient sends ``per_patient`` ADTs (``<patient>-000``…),
    alternating between the two nodes' listeners, each after the last one's AA.
    Returns the control ids sent per patient, in send order."""
    sent: dict[str, list[str]] = {p: [] for p in patients}
    errors: list[BaseException] = []

    def sender(p: int) -> None:
        patient = patients[p]
        try:
            with (
                MLLPClient("127.0.0.1", ports[0]) as c0,
                MLLPClient("127.0.0.1", ports[1]) as c1,
            ):
                for k in range(per_patient):
                    cid = f"{patient}-{k:03d}"
                    client = (c0, c1)[(p + k) % 2]  # each patient alternates nodes
                    assert msa(client.send_message(adt(cid, patient))) == ("AA", cid)
                    sent[patient].append(cid)  # the next one leaves after this ACK
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(p,)) for p in range(len(patients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return sent


def by_patient(cids: Sequence[str]) -> dict[str, list[str]]:
    """The control ids grouped by patient (the part before ``-``), in their order."""
    out: dict[str, list[str]] = {}
    for c in cids:
        out.setdefault(c.split("-")[0], []).append(c)
    return out
