"""Pick a repetition, component or subcomponent out of one field's text.

Touches: nothing.

A value is *leaf* when it holds no repetition, component or subcomponent
separator: its escape sequences are resolved. A non-leaf value (``PID-3`` of a CX) is
returned as the raw text of that element, escapes untouched, so that no
resolved ``\\S\\`` can be mistaken for a real separator.
"""

from __future__ import annotations

from typing import NamedTuple

from eai.hl7._escape import unescape

__all__ = ["Delimiters", "pick", "resolve"]


class Delimiters(NamedTuple):
    """The separators of one message: MSH-1 and the characters of MSH-2."""

    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str
    encoding_chars: str

    @classmethod
    def of(cls, field_sep: str, encoding_chars: str) -> Delimiters:
        """Build from MSH-1 and MSH-2 (4 or 5 characters, already checked)."""
        return cls(
            field_sep,
            encoding_chars[0],
            encoding_chars[1],
            encoding_chars[2],
            encoding_chars[3],
            encoding_chars,
        )


def pick(text: str, d: Delimiters, rep: int, comp: int, sub: int) -> str | None:
    """Return the raw text at 1-based ``rep``/``comp``/``sub`` of a field (0 = whole level).

    None when the element is absent (more repetitions or components asked for
    than the field holds).
    """
    for index, sep in ((rep, d.repetition), (comp, d.component), (sub, d.subcomponent)):
        if index == 1:
            cut = text.find(sep)
            if cut >= 0:
                text = text[:cut]
        elif index and len(text) <= _SHORT:
            parts = text.split(sep, index)
            if index > len(parts):
                return None
            text = parts[index - 1]
        elif index:
            # Found by position rather than split: a split copies what follows the part,
            # and an OBX-5 ED holds a whole document (OBX-5.2..5.4 sit before it).
            start = 0
            for _ in range(index - 1):
                cut = text.find(sep, start)
                if cut < 0:
                    return None
                start = cut + 1
            end = text.find(sep, start)
            text = text[start:] if end < 0 else text[start:end]
    return text


_SHORT = 256
"""Up to this length a field is split (one call); a longer one is searched separator by
separator (no copy of what follows the part)."""


def resolve(text: str, d: Delimiters, codec: str) -> str:
    """Resolve escapes in a leaf value; return a non-leaf value unchanged."""
    if (
        d.escape not in text
        or d.component in text
        or d.subcomponent in text
        or d.repetition in text
    ):
        return text
    return unescape(text, d.encoding_chars, d.field, codec)
