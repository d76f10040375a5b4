"""The ordering key of a raw message, read at ingest: whose messages must keep their order.

Touches: nothing.

Delivery keeps each patient's order, but a message's patient is only known once the
pipeline parsed it; until then a ``received`` message used to hold back every later
delivery (a global watermark). The journal now stores, with each message, a key read
from the raw bytes as it is journaled: a later delivery waits only for the earlier
messages still ``received`` that have the same key, or no key.

The key is the establishment's own patient id as it sends it: MSH-4 (sending facility,
first component) and the first PID-3 repetition that is not the INS (IHE PAM France
2.11: PID-3 repeats the local id, type PI, and the INS, type ``INS`` with the INS OID
``1.2.250.1.213.1.4.8`` NIR, ``.9`` NIA, ``.10`` test, ``.11`` demo in CX.4.2), i.e.
its IPP: the order kept is the order that establishment sent its messages in, the
same id the pipeline's ``local_ordering_key`` starts from.

Anything else gives "" (unknown), which the claims treat as a barrier for every
patient, as the watermark did: not HL7 v2 (CDA, DICOM...), no PID, no usable id,
several PID or MSH segments (a batch), an MRG segment (A40 merge, A47 identifier
change: the message spans two ids, so it waits for, and holds back, everybody),
anything malformed. The scan is a few ``bytes.find`` and splits of two lines, a few
µs on a 2 kB ADT (it runs on the journal's writer thread for every message).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["order_key", "ordering_id"]

_INS_OID_ARC = b"1.2.250.1.213.1.4."
"""The INS OIDs (NIR .8, NIA .9, test .10, demo .11; former INS-C .2)."""


def order_key(payload: bytes, keyed_hash: Callable[[str], str]) -> str:
    """The journal's ``messages.order_key``: ``keyed_hash`` of :func:`ordering_id`, or "".

    A keyed hash (``Cipher.hash_id``, at most 64 characters): the journal's metadata
    cannot be used to test a guessed patient id."""
    found = ordering_id(payload)
    return keyed_hash(found) if found else ""


def ordering_id(payload: bytes) -> str:
    """``<MSH-4.1>\\x1f<local id>`` of an HL7 v2 message, "" when unknown (see the module
    doc). Never raises on ``bytes``."""
    try:
        return _ordering_id(payload)
    except Exception:  # noqa: BLE001 - a key must never fail an ingest: unknown is safe
        return ""


def _ordering_id(data: bytes) -> str:
    if data[:3] != b"MSH" or len(data) < 9:
        return ""
    fs = data[3:4]
    enc_end = data.find(fs, 4)
    if enc_end not in (8, 9) or fs in b"\r\n":
        return ""
    comp, rep, sub = data[4:5], data[5:6], data[7:8]
    if len({fs, comp, rep, sub, b"\r", b"\n"}) != 6:
        return ""
    if b"\n" in data:  # LF or CRLF line ends (files, HTTP): read as CR
        data = data.replace(b"\n", b"\r")
    pid = data.find(b"\rPID" + fs) + 1
    if (
        pid == 0
        or data.find(b"\rPID" + fs, pid) >= 0
        or b"\rMRG" + fs in data
        or b"\rMSH" + fs in data
    ):
        return ""
    msh = data[: data.find(b"\r")].split(fs, 4)
    pid_end = data.find(b"\r", pid)
    pid_fields = data[pid : pid_end if pid_end >= 0 else len(data)].split(fs, 4)
    if len(msh) < 4 or len(pid_fields) < 4:
        return ""
    facility = msh[3].split(rep, 1)[0].split(comp, 1)[0].strip()
    for cx in pid_fields[3].split(rep):
        parts = cx.split(comp, 5)
        value = parts[0].strip()
        if value and not _is_ins(parts, sub):
            return (facility + b"\x1f" + value).decode("latin-1")
    return ""


def _is_ins(parts: list[bytes], sub: bytes) -> bool:
    """A PID-3 repetition that is an INS: CX.5 ``INS`` (``INS-C``, ``INS-NIR``...) or an INS
    OID in CX.4.2."""
    if len(parts) > 4 and parts[4].strip().upper().startswith(b"INS"):
        return True
    if len(parts) > 3:
        authority = parts[3].split(sub, 2)
        if len(authority) > 1 and authority[1].strip().startswith(_INS_OID_ARC):
            return True
    return False
