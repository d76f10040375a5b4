"""The PDU wire codec (PS3.8 9.3): PDU headers, A-RELEASE / A-ABORT PDUs, P-DATA-TF items.

Touches: nothing (pure functions on bytes).

The lowest layer of the DICOM network package: :mod:`dicom_router._pdu_io`
reads and writes these PDUs on a socket, :mod:`dicom_router._acse` encodes the
A-ASSOCIATE PDUs, :mod:`dicom_router._dimse` builds DIMSE messages on top.
Names follow the standard:

- PDU header (PS3.8 9.3.1): PDU-type (1), reserved (1), PDU-length (4, big
  endian), then that many bytes;
- P-DATA-TF (PS3.8 9.3.5): one or more PDV items, each Item-length (4, big
  endian), Presentation-context-ID (1), Message Control Header (1: bit 0 set
  for a command fragment, bit 1 set for the last fragment, PS3.8 E.2), data;
- A-RELEASE-RQ/RP (PS3.8 9.3.6, 9.3.7), A-ABORT (PS3.8 9.3.8): fixed 10 bytes.

Every parser raises :class:`ProtocolError` and nothing else on bad input.
"""

from __future__ import annotations

import struct

__all__ = [
    "A_ABORT",
    "A_ASSOCIATE_AC",
    "A_ASSOCIATE_RJ",
    "A_ASSOCIATE_RQ",
    "A_RELEASE_RP",
    "A_RELEASE_RQ",
    "PDU_HEADER",
    "P_DATA_TF",
    "Pdv",
    "ProtocolError",
    "RELEASE_RP",
    "RELEASE_RQ",
    "abort_pdu",
    "parse_pdu_header",
    "parse_pdvs",
    "pdata_message",
    "pdata_pdus",
    "pdu_header",
]

# PDU types (PS3.8 9.3.1)
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07
PDU_HEADER = 6

_HEADER = struct.Struct(">BxL")
_ITEM = struct.Struct(">LBB")

RELEASE_RP = bytes([A_RELEASE_RP, 0, 0, 0, 0, 4, 0, 0, 0, 0])
"""A-RELEASE-RP PDU (PS3.8 9.3.7)."""
RELEASE_RQ = bytes([A_RELEASE_RQ, 0, 0, 0, 0, 4, 0, 0, 0, 0])
"""A-RELEASE-RQ PDU (PS3.8 9.3.6)."""


class ProtocolError(ValueError):
    """Bytes that are not the PDU, PDV item or command set they should be."""


def abort_pdu(source: int = 0x02, reason: int = 0x00) -> bytes:
    """A-ABORT PDU (PS3.8 9.3.8): source 0 (service user) or 2 (service provider),
    reason (provider only): 0 not specified, 1 unrecognized PDU, 2 unexpected PDU,
    4 unrecognized PDU parameter, 5 unexpected PDU parameter, 6 invalid PDU parameter value."""
    return bytes([A_ABORT, 0, 0, 0, 0, 4, 0, 0, source & 0xFF, reason & 0xFF])


def parse_pdu_header(header: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(PDU-type, PDU-length) of the 6-byte PDU header."""
    if len(header) != PDU_HEADER:
        raise ProtocolError(f"PDU header of {len(header)} bytes")
    pdu_type, length = _HEADER.unpack_from(header)
    return int(pdu_type), int(length)


def pdu_header(pdu_type: int, length: int) -> bytes:
    """The 6-byte PDU header (the inverse of :func:`parse_pdu_header`)."""
    return _HEADER.pack(pdu_type, length)


Pdv = tuple[int, int, memoryview]
"""A PDV item: (Presentation-context-ID, Message Control Header, data, not copied)."""


def parse_pdvs(body: bytes | bytearray | memoryview) -> list[Pdv]:
    """The PDV items of a P-DATA-TF PDU's variable field (``body``); slices, no copy."""
    view = memoryview(body).cast("B") if not isinstance(body, memoryview) else body
    end = len(view)
    if end == 0:
        raise ProtocolError("P-DATA-TF without any PDV item")
    out: list[Pdv] = []
    pos = 0
    while pos < end:
        if pos + 6 > end:
            raise ProtocolError(f"truncated PDV item header at byte {pos}")
        length, context_id, control = _ITEM.unpack_from(view, pos)
        if length < 2:
            raise ProtocolError(f"PDV item of length {length}")
        stop = pos + 4 + length
        if stop > end:
            raise ProtocolError(f"PDV item announces {length} bytes, {end - pos - 4} left")
        out.append((int(context_id), int(control), view[pos + 6 : stop]))
        pos = stop
    return out


def pdata_pdus(
    context_id: int, data: bytes, peer_max_pdu: int, *, command: bool = True
) -> list[bytes]:
    """``data`` as P-DATA-TF PDUs of one PDV each, fragmented to the peer's Maximum
    Length Received (``peer_max_pdu``, the PDU variable field; 0: no limit)."""
    chunk = max(peer_max_pdu - 6, 1) if peer_max_pdu > 0 else max(len(data), 1)
    flag = 0x01 if command else 0x00
    out = []
    pos = 0
    while True:
        piece = data[pos : pos + chunk]
        pos += len(piece)
        last = pos >= len(data)
        control = flag | (0x02 if last else 0x00)
        item = len(piece) + 2
        out.append(
            _HEADER.pack(P_DATA_TF, item + 4) + _ITEM.pack(item, context_id, control) + piece
        )
        if last:
            return out


_PDU_PDV = struct.Struct(">BxLLBB")  # P-DATA-TF header and the header of its one PDV item


def pdata_message(
    context_id: int,
    command_set: bytes | bytearray | memoryview,
    dataset: bytes | bytearray | memoryview | None,
    peer_max_pdu: int,
) -> bytearray:
    """A DIMSE message as P-DATA-TF PDUs of one PDV each, in one buffer: the command
    set, then the data set (if any), each fragmented to the peer's Maximum Length
    Received (``peer_max_pdu``, the PDU variable field; 0: no limit). Each data
    byte is copied once."""
    parts = [(memoryview(command_set).cast("B"), 0x01)]
    if dataset is not None:
        parts.append((memoryview(dataset).cast("B"), 0x00))
    sizes = []
    total = 0
    for view, _flag in parts:
        size = len(view)
        chunk = max(peer_max_pdu - 6, 1) if peer_max_pdu > 0 else max(size, 1)
        count = max(-(-size // chunk), 1)
        sizes.append((chunk, count))
        total += size + count * _PDU_PDV.size
    out = bytearray(total)
    pos = 0
    for (view, flag), (chunk, count) in zip(parts, sizes, strict=True):
        start = 0
        for i in range(count):
            piece = view[start : start + chunk]
            start += len(piece)
            control = flag | (0x02 if i == count - 1 else 0x00)
            item = len(piece) + 2
            _PDU_PDV.pack_into(out, pos, P_DATA_TF, item + 4, item, context_id, control)
            pos += _PDU_PDV.size
            out[pos : pos + len(piece)] = piece
            pos += len(piece)
    return out
