"""Checks a message against the standard HL7 v2 structure of its version, with hl7apy.

Touches: nothing.

hl7apy is slow (tens of messages per second) and, with groups on, drops the
Z-segments: it is only used here, off the hot path, when a route asks for
``validate_structure``; the message we forward is never rebuilt from it.
"""

from __future__ import annotations

import re

from eai.hl7._reader import Hl7Message

__all__ = ["structure_problem"]

_VALUE = re.compile(r"^.*? is not (an? .*)$")


def _redact(text: str) -> str:
    """hl7apy quotes offending values ("19790A28 is not an HL7 valid date value"):
    keep what is wrong, drop the value, which may be patient data."""
    m = _VALUE.match(text)
    return f"a value is not {m.group(1)}" if m else text


def structure_problem(message: Hl7Message) -> str | None:
    """``None`` when the structure is valid, else a reason without patient data."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    text = message.text.rstrip("\r")
    try:
        parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        parsed.validate()
    except (HL7apyException, ValueError) as exc:
        return f"HL7 structure: {_redact(str(exc).splitlines()[0] if str(exc) else '')}".strip()
    except Exception as exc:  # noqa: BLE001 - hl7apy raises assorted errors on odd input
        return f"HL7 structure: {type(exc).__name__}"
    return None
