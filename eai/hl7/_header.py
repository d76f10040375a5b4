"""Read and check the MSH segment of an HL7 v2 message, fast enough for every received message.

Touches: nothing.

The checks follow HL7 v2.5 chapter 2 (MSH segment); every refusal is an
InputError carrying a table 0357 code and an MSH location, and its reason never
quotes a field that could hold patient data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eai.errors import InputError
from eai.hl7._charset import codec_for_charset, decode_payload
from eai.hl7._element import Delimiters, pick, resolve
from eai.hl7._escape import unescape
from eai.hl7._lines import segment_spans

__all__ = ["MessageHeader", "guess_control_id", "read_header", "read_message"]

_EOL = re.compile(rb"[\r\n]")
_VERSION = re.compile(r"2\.\d{1,2}(?:\.\d{1,2})?")
_MAX_GUESS = 199  # MSH-10 is 20 characters in v2.5, 199 from v2.7


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What the engine needs from MSH, values unescaped (first repetition, first component)."""

    field_sep: str
    encoding_chars: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    message_structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    charset: str
    codec: str

    @property
    def enhanced_mode(self) -> bool:
        """True when MSH-15 (accept acknowledgment type) is valued."""
        return bool(self.accept_ack_type)

    @property
    def delimiters(self) -> Delimiters:
        """The separators as a named tuple (MSH-1 and MSH-2)."""
        return Delimiters.of(self.field_sep, self.encoding_chars)


def read_header(data: bytes, *, default_charset: str = "UNICODE UTF-8") -> MessageHeader:
    """Check a whole message (delimiters, charset, decoding, segment names) and return its MSH.

    Raises InputError with a table 0357 code for anything that makes the message
    unacceptable; never any other exception for ``bytes`` input.
    """
    return read_message(data, default_charset)[0]


def read_message(
    data: bytes, default_charset: str
) -> tuple[MessageHeader, str, list[tuple[int, int]]]:
    """Decode ``data`` once; return its header, its text (``\\r`` line ends) and segment spans.

    The first span is the MSH segment.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    delims = _delimiters(data)
    charset = _charset_field(data, delims)
    codec = codec_for_charset(charset, default_charset)
    text, spans = segment_spans(decode_payload(data, codec), delims.field)
    start, end = spans[0]
    msh = text[start:end]
    fields = msh.split(delims.field)
    values = _plain_values(msh, fields, delims) or _values(fields, delims, codec)
    return _header(values, delims, charset, codec), text, spans


_STANDARD = b"MSH|^~\\&|"
_STANDARD_DELIMITERS = Delimiters.of("|", "^~\\&")
"""What nearly every sender's MSH starts with: its delimiters need no checking."""


def _delimiters(data: bytes) -> Delimiters:
    """Check MSH-1 and MSH-2 from the raw bytes (the MSH segment is ASCII)."""
    if data[:9] == _STANDARD:
        return _STANDARD_DELIMITERS
    if not data:
        raise InputError("empty message", "100", "MSH")
    if data[:3] != b"MSH":
        raise InputError("message does not start with an MSH segment", "100", "MSH")
    field_sep = chr(data[3]) if len(data) > 3 else ""
    if not _is_delimiter(field_sep):
        raise InputError(
            "MSH-1 field separator is missing or not a printable non-alphanumeric ASCII character",
            "102",
            "MSH-1",
        )
    end = _EOL.search(data, 4)
    line = data[4 : end.start() if end else len(data)]
    cut = line.find(data[3:4])
    raw_enc = line if cut < 0 else line[:cut]
    if not raw_enc:
        raise InputError("MSH-2 encoding characters are missing", "101", "MSH-2")
    enc = raw_enc.decode("latin-1")
    if len(enc) not in (4, 5):
        raise InputError(
            "MSH-2 must hold 4 encoding characters (5 with the v2.7 truncation character), "
            f"got {len(enc)}",
            "102",
            "MSH-2",
        )
    if not all(_is_delimiter(c) for c in enc):
        raise InputError(
            "MSH-2 encoding characters must be printable non-alphanumeric ASCII characters",
            "102",
            "MSH-2",
        )
    if len(set(enc)) != len(enc) or field_sep in enc:
        raise InputError(
            "MSH-2 encoding characters must differ from each other and from MSH-1",
            "102",
            "MSH-2",
        )
    return Delimiters.of(field_sep, enc)


def _is_delimiter(char: str) -> bool:
    return len(char) == 1 and "!" <= char <= "~" and not char.isalnum()


def _charset_field(data: bytes, d: Delimiters) -> str:
    """MSH-18 (its first repetition), read from the bytes before the payload is decoded.

    Further repetitions name character sets switched to with escape sequences
    (HL7 v2.5 section 2.7.2), which are not supported: they stay literal.
    """
    end = _EOL.search(data)
    fields = data[: end.start() if end else len(data)].split(d.field.encode("ascii"))
    if len(fields) < 18:
        return ""
    try:
        return fields[17].split(d.repetition.encode("ascii"), 1)[0].decode("ascii").strip()
    except UnicodeDecodeError:
        raise InputError("MSH-18 character set is not ASCII", "103", "MSH-18") from None


_Values = tuple[str, str, str, str, str, str, str, str, str, str, str, str]
"""MSH-3, -4, -5, -6, -9.1, -9.2, -9.3, -10 (first repetition, whole), -11, -12, -15, -16,
each the first repetition and (but MSH-10) its first component, unescaped."""


def _plain_values(msh: str, fields: list[str], d: Delimiters) -> _Values | None:
    """The values of an MSH whose fields after MSH-2 hold no repetition, escape or
    subcomponent separator (nearly every one): a split each; None for any other MSH,
    which :func:`_values` reads."""
    rest = msh[5 + len(d.encoding_chars) :]
    if d.escape in rest or d.repetition in rest or d.subcomponent in rest:
        return None
    f = fields if len(fields) >= 16 else fields + [""] * (16 - len(fields))
    comp = d.component
    msg_type = f[8].split(comp, 3)
    return (
        f[2].split(comp, 1)[0],
        f[3].split(comp, 1)[0],
        f[4].split(comp, 1)[0],
        f[5].split(comp, 1)[0],
        msg_type[0],
        msg_type[1] if len(msg_type) > 1 else "",
        msg_type[2] if len(msg_type) > 2 else "",
        f[9],
        f[10].split(comp, 1)[0],
        f[11].split(comp, 1)[0],
        f[14].split(comp, 1)[0],
        f[15].split(comp, 1)[0],
    )


def _values(fields: list[str], d: Delimiters, codec: str) -> _Values:
    """The values of any MSH (``fields[n - 1]`` is MSH-n, n >= 2), unescaped."""

    count = len(fields)
    cuts = (d.repetition, d.component, d.subcomponent)

    def get(number: int, comp: int = 1) -> str:
        """MSH-n, first repetition; ``comp`` 1 (fast path) or n: its first subcomponent."""
        if number > count:
            return ""
        text = fields[number - 1]
        if comp != 1:
            value = pick(text, d, 1, comp, 1 if comp else 0)
            return "" if value is None else resolve(value, d, codec)
        for sep in cuts:
            cut = text.find(sep)
            if cut >= 0:
                text = text[:cut]
        return unescape(text, d.encoding_chars, d.field, codec) if d.escape in text else text

    return (
        get(3),
        get(4),
        get(5),
        get(6),
        get(9, 1),
        get(9, 2),
        get(9, 3),
        get(10, 0),
        get(11),
        get(12, 1),
        get(15),
        get(16),
    )


def _header(values: _Values, d: Delimiters, charset: str, codec: str) -> MessageHeader:
    """Check the values of MSH (see :data:`_Values`) and build the header."""
    (app, facility, r_app, r_facility, msg_code, trigger, structure) = values[:7]
    (control_id, processing_id, version, accept_ack, application_ack) = values[7:]
    if not msg_code:
        raise InputError("MSH-9 message type is missing", "101", "MSH-9")
    if not control_id:
        raise InputError("MSH-10 message control id is missing", "101", "MSH-10")
    if not version:
        raise InputError("MSH-12 version id is missing", "101", "MSH-12")
    if not _VERSION.fullmatch(version):
        raise InputError(
            f"MSH-12 version {version[:20]!r} is not a supported HL7 v2.x version",
            "203",
            "MSH-12",
        )
    return MessageHeader(
        field_sep=d.field,
        encoding_chars=d.encoding_chars,
        sending_application=app,
        sending_facility=facility,
        receiving_application=r_app,
        receiving_facility=r_facility,
        message_type=f"{msg_code}^{trigger}" if trigger else msg_code,
        message_structure=structure,
        control_id=control_id,
        processing_id=processing_id,
        version=version,
        accept_ack_type=accept_ack,
        application_ack_type=application_ack,
        charset=charset,
        codec=codec,
    )


def guess_control_id(data: bytes) -> str:
    """Best-effort MSH-10 of a message that may be broken; "" when none is found. Never raises.

    Used to answer an AR to a message ``read_header`` refused: the sender
    matches the MSA-2 of the answer with the control id it sent.
    """
    try:
        start = data.find(b"MSH")
        if start < 0 or len(data) < start + 5:
            return ""
        sep = data[start + 3 : start + 4]
        if not _is_delimiter(sep.decode("latin-1")):
            return ""
        end = _EOL.search(data, start)
        fields = data[start : end.start() if end else len(data)].split(sep, 10)
        if len(fields) < 10:
            return ""
        value = fields[9].decode("utf-8", "replace").strip()[:_MAX_GUESS]
        return value if value.isprintable() else ""
    except Exception:  # this helper must answer something for any input
        return ""
