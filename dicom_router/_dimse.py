"""The DIMSE wire codec: PDU headers, P-DATA-TF items, DIMSE command sets, File Meta Information.

Touches: nothing (pure functions on bytes).

Only what the C-STORE / C-ECHO acceptor (:mod:`dicom_router._acceptor`) and
the C-STORE requestor (:mod:`dicom_router._requestor`: :func:`store_rq`,
:func:`pdata_message`, :func:`response_status`, :data:`RELEASE_RQ`) need on
their hot path; association negotiation (A-ASSOCIATE-RQ/AC/RJ) stays with
``pynetdicom.pdu``. Names follow the standard:

- PDU header (PS3.8 9.3.1): PDU-type (1), reserved (1), PDU-length (4, big
  endian), then that many bytes;
- P-DATA-TF (PS3.8 9.3.5): one or more PDV items, each Item-length (4, big
  endian), Presentation-context-ID (1), Message Control Header (1: bit 0 set
  for a command fragment, bit 1 set for the last fragment, PS3.8 E.2), data;
- command set (PS3.7 6.3, E): group 0000 in Implicit VR Little Endian. The
  elements below are decoded (:class:`Command`), any other group 0000 element
  is skipped;
- File Meta Information (PS3.10 7.1): group 0002 in Explicit VR Little Endian,
  built from a byte template (:func:`encode_file_meta`).

Every parser raises :class:`ProtocolError` and nothing else on bad input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "A_ABORT",
    "A_ASSOCIATE_AC",
    "A_ASSOCIATE_RJ",
    "A_ASSOCIATE_RQ",
    "A_RELEASE_RP",
    "A_RELEASE_RQ",
    "C_CANCEL_RQ",
    "C_ECHO_RQ",
    "C_ECHO_RSP",
    "C_STORE_RQ",
    "C_STORE_RSP",
    "Command",
    "MAX_COMMAND",
    "NO_DATASET",
    "PDU_HEADER",
    "P_DATA_TF",
    "Pdv",
    "ProtocolError",
    "RELEASE_RP",
    "RELEASE_RQ",
    "abort_pdu",
    "decode_command",
    "encode_command",
    "encode_file_meta",
    "failure_rsp",
    "parse_pdu_header",
    "parse_pdvs",
    "pdata_message",
    "pdata_pdus",
    "pdu_header",
    "response_status",
    "store_rq",
    "store_rsp",
    "echo_rsp",
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

# Command Field values (PS3.7 E.1)
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
C_CANCEL_RQ = 0x0FFF
NO_DATASET = 0x0101
"""Command Data Set Type (0000,0800) meaning "no data set follows" (PS3.7 E.1)."""

MAX_COMMAND = 1 << 16
"""Largest command set accepted, all fragments together (a real one is ~200 bytes)."""

_HEADER = struct.Struct(">BxL")
_ITEM = struct.Struct(">LBB")
_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")

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


@dataclass(frozen=True, slots=True)
class Command:
    """The decoded elements of a DIMSE command set (PS3.7 E.1); absent: None or ""."""

    command_field: int
    data_set_type: int = NO_DATASET
    message_id: int | None = None
    message_id_being_responded_to: int | None = None
    affected_sop_class_uid: str = ""
    affected_sop_instance_uid: str = ""
    priority: int | None = None
    status: int | None = None
    move_originator_ae: str = ""
    move_originator_message_id: int | None = None

    @property
    def has_dataset(self) -> bool:
        """True when a data set follows the command (Command Data Set Type not 0x0101)."""
        return self.data_set_type != NO_DATASET

    @property
    def is_request(self) -> bool:
        """Requests have bit 15 of the Command Field clear (responses set it)."""
        return not self.command_field & 0x8000


# (0000,eeee) element number -> (Command field name, kind): US, UI (UID), AE
_DECODED: dict[int, tuple[str, str]] = {
    0x0002: ("affected_sop_class_uid", "UI"),
    0x0100: ("command_field", "US"),
    0x0110: ("message_id", "US"),
    0x0120: ("message_id_being_responded_to", "US"),
    0x0700: ("priority", "US"),
    0x0800: ("data_set_type", "US"),
    0x0900: ("status", "US"),
    0x1000: ("affected_sop_instance_uid", "UI"),
    0x1030: ("move_originator_ae", "AE"),
    0x1031: ("move_originator_message_id", "US"),
}
_ENCODED = sorted((elem, name, kind) for elem, (name, kind) in _DECODED.items())


def decode_command(data: bytes | bytearray | memoryview) -> Command:
    """The command set in ``data`` (Implicit VR Little Endian, group 0000)."""
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    end = len(view)
    if end > MAX_COMMAND:
        raise ProtocolError(f"command set of {end} bytes")
    values: dict[str, int | str] = {}
    pos = 0
    while pos < end:
        if pos + 8 > end:
            raise ProtocolError(f"truncated command element at byte {pos}")
        group, elem, length = _ELEMENT.unpack_from(view, pos)
        pos += 8
        if group != 0x0000:
            raise ProtocolError(f"element ({group:04X},{elem:04X}) in a command set")
        if length > end - pos:
            raise ProtocolError(f"(0000,{elem:04X}) announces {length} bytes, {end - pos} left")
        known = _DECODED.get(elem)
        if known is not None:
            name, kind = known
            if kind == "US":
                if length != 2:
                    raise ProtocolError(f"(0000,{elem:04X}) US of {length} bytes")
                values[name] = int(_US.unpack_from(view, pos)[0])
            else:
                text = bytes(view[pos : pos + length]).decode("latin-1")
                values[name] = text.strip(" \0") if kind == "AE" else text.rstrip("\0 ")
        pos += length
    if "command_field" not in values:
        raise ProtocolError("command set without Command Field (0000,0100)")
    if "data_set_type" not in values:
        raise ProtocolError("command set without Command Data Set Type (0000,0800)")
    return Command(**values)  # type: ignore[arg-type]


def _even(raw: bytes, pad: bytes) -> bytes:
    return raw + pad if len(raw) % 2 else raw


def encode_command(command: Command) -> bytes:
    """``command`` as a command set (Implicit VR Little Endian, with Command Group Length);
    empty strings and None are left out."""
    parts = []
    for elem, name, kind in _ENCODED:
        value = getattr(command, name)
        if value is None or value == "":
            continue
        if kind == "US":
            raw = _US.pack(value)
        else:
            raw = _even(str(value).encode("latin-1"), b"\0" if kind == "UI" else b" ")
        parts.append(_ELEMENT.pack(0, elem, len(raw)) + raw)
    body = b"".join(parts)
    return _ELEMENT.pack(0, 0, 4) + _UL.pack(len(body)) + body


def store_rq(
    message_id: int, sop_class_uid: str, sop_instance_uid: str, priority: int = 0x0002
) -> bytes:
    """The C-STORE-RQ command set of one instance (PS3.7 9.3.1.1), a data set following;
    ``priority``: 0x0000 medium, 0x0001 high, 0x0002 low (pynetdicom's default)."""
    return encode_command(
        Command(
            command_field=C_STORE_RQ,
            data_set_type=0x0001,
            message_id=message_id,
            affected_sop_class_uid=sop_class_uid,
            affected_sop_instance_uid=sop_instance_uid,
            priority=priority,
        )
    )


def response_status(command: Command, command_field: int, message_id: int) -> int:
    """The Status of ``command``, the response (``command_field``) to request ``message_id``;
    :class:`ProtocolError` if it is not that response or has no Status."""
    if command.command_field != command_field:
        raise ProtocolError(
            f"Command Field 0x{command.command_field:04X} instead of 0x{command_field:04X}"
        )
    if command.message_id_being_responded_to != message_id:
        raise ProtocolError(
            f"response to message {command.message_id_being_responded_to}, not {message_id}"
        )
    if command.status is None:
        raise ProtocolError("response without Status (0000,0900)")
    return command.status


def store_rsp(request: Command, status: int) -> bytes:
    """The C-STORE-RSP command set answering ``request`` (PS3.7 9.3.1.2)."""
    return encode_command(
        Command(
            command_field=C_STORE_RSP,
            message_id_being_responded_to=request.message_id,
            affected_sop_class_uid=request.affected_sop_class_uid,
            affected_sop_instance_uid=request.affected_sop_instance_uid,
            status=status,
        )
    )


def echo_rsp(request: Command, status: int = 0x0000) -> bytes:
    """The C-ECHO-RSP command set answering ``request`` (PS3.7 9.3.5.2)."""
    return encode_command(
        Command(
            command_field=C_ECHO_RSP,
            message_id_being_responded_to=request.message_id,
            affected_sop_class_uid=request.affected_sop_class_uid,
            status=status,
        )
    )


def failure_rsp(request: Command, status: int) -> bytes:
    """A response to any request (Command Field with bit 15 set), carrying only ``status``
    and the request's identifying elements (PS3.7 C: 0x0211 unrecognized operation,
    0x0122 SOP class not supported)."""
    return encode_command(
        Command(
            command_field=request.command_field | 0x8000,
            message_id_being_responded_to=request.message_id,
            affected_sop_class_uid=request.affected_sop_class_uid,
            affected_sop_instance_uid=request.affected_sop_instance_uid,
            status=status,
        )
    )


# -- File Meta Information (PS3.10 7.1), Explicit VR Little Endian ----------

_SHORT = struct.Struct("<HH2sH")
_VERSION = struct.pack("<HH2sHL", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def _short(elem: int, vr: bytes, raw: bytes) -> bytes:
    if len(raw) > 0xFFFE:
        raise ValueError(f"(0002,{elem:04X}) value of {len(raw)} bytes")
    return _SHORT.pack(0x0002, elem, vr, len(raw)) + raw


def encode_file_meta(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    source_ae: str,
    implementation_class_uid: str,
    implementation_version: str,
) -> bytes:
    """Group 0002 as pynetdicom's ``encode_file_meta`` writes it for a received instance
    (without the preamble): UIDs padded to even length with NUL, text with a space."""

    def ui(elem: int, value: str) -> bytes:
        return _short(elem, b"UI", _even(value.encode("latin-1"), b"\0"))

    body = b"".join(
        (
            _VERSION,
            ui(0x0002, sop_class_uid),
            ui(0x0003, sop_instance_uid),
            ui(0x0010, transfer_syntax),
            ui(0x0012, implementation_class_uid),
            _short(0x0013, b"SH", _even(implementation_version.encode("latin-1"), b" ")),
            _short(0x0016, b"AE", _even(source_ae.encode("latin-1"), b" ")),
        )
    )
    return _SHORT.pack(0x0002, 0x0000, b"UL", 4) + _UL.pack(len(body)) + body
