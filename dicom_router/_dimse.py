"""DIMSE messages (PS3.7): command sets, their reassembly from PDVs, File Meta Information.

Touches: nothing (pure functions on bytes).

Above :mod:`dicom_router._pdu` (PDU headers and P-DATA-TF items, whose names
this module re-exports for its callers), below the associations that send
and receive these messages (:mod:`dicom_router._acceptor`,
:mod:`dicom_router._requestor`). Names follow the standard:

- command set (PS3.7 6.3, E): group 0000 in Implicit VR Little Endian. The
  elements below are decoded (:class:`Command`), any other group 0000 element
  is skipped;
- a DIMSE message is its command set then, if announced, its data set, each
  sent as PDV fragments on one presentation context (PS3.8 E.2):
  :class:`Message` puts them back together;
- File Meta Information (PS3.10 7.1): group 0002 in Explicit VR Little Endian,
  built from a byte template (:func:`encode_file_meta`).

Every parser raises :class:`ProtocolError` and nothing else on bad input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dicom_router._pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
    PDU_HEADER,
    RELEASE_RP,
    RELEASE_RQ,
    Pdv,
    ProtocolError,
    abort_pdu,
    parse_pdu_header,
    parse_pdvs,
    pdata_message,
    pdata_pdus,
    pdu_header,
)

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
    "Message",
    "NO_DATASET",
    "PDU_HEADER",
    "P_DATA_TF",
    "Pdv",
    "ProtocolError",
    "RELEASE_RP",
    "RELEASE_RQ",
    "VERIFICATION",
    "abort_pdu",
    "decode_command",
    "echo_rq",
    "echo_rsp",
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
]

VERIFICATION = "1.2.840.10008.1.1"
"""Verification SOP Class UID (PS3.4 A.4), the abstract syntax of C-ECHO."""

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

_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")


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


def echo_rq(message_id: int) -> bytes:
    """The C-ECHO-RQ command set (PS3.7 9.3.5.1), no data set following."""
    return encode_command(
        Command(
            command_field=C_ECHO_RQ,
            message_id=message_id,
            affected_sop_class_uid=VERIFICATION,
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


class Message:
    """A DIMSE message being reassembled from PDV fragments (PS3.8 E.2)."""

    __slots__ = (
        "context_id",
        "command",
        "_command_parts",
        "_command_size",
        "data",
        "data_size",
        "dropped",
        "_max_data",
    )

    def __init__(self, max_data: int) -> None:
        self._max_data = max_data
        self.dropped = False
        """True when the data set went over ``max_data`` bytes: its fragments are not kept."""
        self.context_id = -1
        self.command: Command | None = None
        self._command_parts: list[memoryview] = []
        self._command_size = 0
        self.data: list[memoryview] = []
        self.data_size = 0

    def add(self, context_id: int, control: int, data: memoryview) -> bool:
        """Adds one PDV; True when the message is complete."""
        if self.context_id < 0:
            self.context_id = context_id
        elif context_id != self.context_id:
            raise ProtocolError(
                f"PDV on presentation context {context_id} inside a message on {self.context_id}"
            )
        last = bool(control & 0x02)
        if control & 0x01:
            if self.command is not None:
                raise ProtocolError("command fragment after the last one")
            self._command_size += len(data)
            if self._command_size > MAX_COMMAND:
                raise ProtocolError(f"command set longer than {MAX_COMMAND} bytes")
            self._command_parts.append(data)
            if not last:
                return False
            parts = self._command_parts
            self.command = decode_command(parts[0] if len(parts) == 1 else b"".join(parts))
            self._command_parts = []
            return not self.command.has_dataset
        if self.command is None or not self.command.has_dataset:
            raise ProtocolError("data set fragment without a command announcing one")
        self.data_size += len(data)
        if self.data_size > self._max_data:
            self.dropped = True
            self.data = []
        else:
            self.data.append(data)
        return last


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
