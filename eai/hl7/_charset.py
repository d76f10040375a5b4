"""Map an HL7 MSH-18 character set (table 0211) to a Python codec, and decode payloads with it.

Touches: nothing.

Only ASCII-compatible sets are supported: the MSH segment must be readable as
bytes before the payload is decoded, so UTF-16 / UTF-32 and the ISO 2022
escape-switched Japanese sets (ISO IR87, ISO IR159) are refused.
"""

from __future__ import annotations

from eai.errors import InputError

__all__ = ["codec_for_charset", "decode_payload"]

# HL7 v2.5 table 0211 "Alternate character sets" -> Python codec.
_TABLE_0211: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR14": "shift_jis",  # JIS X 0201 (romaji + half-width katakana), a subset of Shift_JIS
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc-kr",
    "BIG-5": "big5",
    "UNICODE": "utf-8",  # deprecated generic value; UTF-8 is the only ASCII-compatible form
    "UNICODE UTF-8": "utf-8",
}

# Values seen in the field that are not in table 0211 but name the same sets.
_ALIASES: dict[str, str] = {
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "ISO-8859-1": "latin-1",
    "ISO-8859-15": "iso8859-15",
    "LATIN-1": "latin-1",
}

_NOT_ASCII_COMPATIBLE = frozenset(
    {"UNICODE UTF-16", "UNICODE UTF-32", "ISO IR87", "ISO IR159", "CNS 11643-1992"}
)


def codec_for_charset(msh18: str, default_charset: str = "UNICODE UTF-8") -> str:
    """Return the Python codec for an MSH-18 value; empty MSH-18 uses ``default_charset``.

    Raises InputError (table 0357 code 103, table value not found) for a
    character set that is unknown or not ASCII-compatible.
    """
    name = msh18.strip() or default_charset.strip()
    key = name.upper()
    codec = _TABLE_0211.get(key) or _ALIASES.get(key)
    if codec is not None:
        return codec
    shown = name[:40]
    if key in _NOT_ASCII_COMPATIBLE:
        raise InputError(
            f"MSH-18 character set {shown!r} is not ASCII-compatible and is not supported",
            "103",
            "MSH-18",
        )
    raise InputError(f"MSH-18 character set {shown!r} is unknown (HL7 table 0211)", "103", "MSH-18")


def decode_payload(data: bytes, codec: str) -> str:
    """Decode the whole payload; an undecodable byte is an InputError (102) naming its offset."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"payload is not valid {codec}: byte 0x{data[exc.start]:02x} at offset {exc.start}",
            "102",
        ) from exc
