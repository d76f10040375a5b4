"""DICOM pieces of ``routes.yaml``: tag references and a route's ``coerce:`` operations.

Touches: nothing.

The models behind the keys :mod:`dicom_router.routing` registers (``when: {tag: ...}``,
``coerce:``); the listener and destination models are in :mod:`dicom_router.scp` and
:mod:`dicom_router.forward`.

A tag is written as a DICOM keyword (``InstitutionName``) or as
``(gggg,eeee)`` in hexadecimal (``(0008,0080)``, ``(0009,1001)``); keywords and
value representations are checked against pydicom's data dictionary when the
file is loaded, so a typo is an ``eai check`` error with its line, never a
surprise on the first image. Applying the operations is
:mod:`dicom_router.coercion`'s job.

Values are restricted to ASCII: the default DICOM repertoire is valid whatever
the instance's Specific Character Set (0008,0005), so marking an instance never
needs to re-encode its other text elements (PS3.5 6.1.2.3).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from eai.config import Model

__all__ = ["Coercion", "DicomTag", "is_uid", "parse_tag", "tag_vr"]

_HEX_TAG = re.compile(r"^\(\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)$")
_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_DA = re.compile(r"^\d{8}$")
_CS = re.compile(r"^[A-Z0-9 _]*$")
_TEXT_MAX = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240,
    "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UC": 1 << 20, "UI": 64, "UR": 1 << 20,
    "UT": 1 << 20,
}  # fmt: skip
_INT_RANGE = {
    "US": (0, 0xFFFF), "SS": (-0x8000, 0x7FFF), "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF), "UV": (0, (1 << 64) - 1), "SV": (-(1 << 63), (1 << 63) - 1),
}  # fmt: skip
_FLOAT_VRS = frozenset({"FL", "FD"})
_SETTABLE = frozenset(_TEXT_MAX) | frozenset(_INT_RANGE) | _FLOAT_VRS | {"SQ"}


def is_uid(value: str) -> bool:
    """A UID per PS3.5 9.1: digits and dots, no leading zero in a component, <= 64 chars."""
    return 0 < len(value) <= 64 and _UID.match(value) is not None


def parse_tag(text: str) -> int:
    """``InstitutionName`` or ``(0008,0080)`` -> 0x00080080; ValueError otherwise."""
    m = _HEX_TAG.match(text.strip())
    if m:
        return int(m.group(1), 16) << 16 | int(m.group(2), 16)
    if _KEYWORD.match(text):
        from pydicom.datadict import tag_for_keyword  # lazy: config loads without pydicom

        tag = tag_for_keyword(text)
        if tag is not None:
            return int(tag)
        raise ValueError(f"{text!r} is not a DICOM keyword (pydicom's dictionary)")
    raise ValueError(f"{text!r} is not a DICOM tag: use a keyword (Modality) or (gggg,eeee)")


def tag_vr(tag: int) -> str | None:
    """The dictionary VR of ``tag`` (first of ``US or SS``); None for private/unknown tags."""
    from pydicom.datadict import dictionary_VR

    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return vr.split(" or ")[0]


def _check_tag(value: str) -> str:
    tag = parse_tag(value)
    if tag >> 16 == 0x0002 or tag >> 16 == 0xFFFE:
        raise ValueError(f"{value!r}: file meta (0002,xxxx) and item tags cannot be used")
    return value


DicomTag = Annotated[
    str,
    AfterValidator(_check_tag),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([A-Za-z][A-Za-z0-9]*|\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\))$",
            "description": "a DICOM keyword or (gggg,eeee) in hexadecimal",
            "examples": ["Modality", "InstitutionName", "(0008,0080)", "(0009,1001)"],
        }
    ),
]
"""A DICOM data element: keyword (``StationName``) or ``(gggg,eeee)``."""

Scalar = str | int | float


def _issue(reason: str, key: str) -> PydanticCustomError:
    return PydanticCustomError("dicom_coercion", "{reason}", {"reason": reason, "key": key})


class Coercion(Model):
    """One marking operation applied to the forwarded copy (never to the spooled original).

    ``set`` a tag to ``value`` (or to ``items`` for a sequence), creating it if
    absent; ``remove`` a tag if present. Operations run in order.
    """

    model_config = ConfigDict(populate_by_name=True)

    set_: DicomTag | None = Field(
        default=None,
        validation_alias="set",
        serialization_alias="set",
        description="tag to set (created when absent, replaced when present)",
        examples=["InstitutionName", "IssuerOfPatientID", "(0009,1001)"],
    )
    remove: DicomTag | None = Field(
        default=None, description="tag to remove when present", examples=["PatientComments"]
    )
    vr: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="value representation; required for private and unknown tags, must "
        "match the dictionary otherwise",
        examples=["LO", "SH", "CS"],
    )
    value: Scalar | tuple[Scalar, ...] | None = Field(
        default=None,
        description="the value (ASCII); a list for a multi-valued element; '' for empty",
        examples=["CHU-X 750712184", "ASIP-SANTE-INS-NIR", ["ORIGINAL", "PRIMARY"]],
    )
    items: tuple[dict[str, Any], ...] | None = Field(
        default=None,
        description="for a sequence (SQ): its items, each a mapping of tag to value "
        "(a list of mappings for a nested sequence)",
        examples=[
            [{"PatientID": "123456", "IssuerOfPatientID": "CHU-X", "TypeOfPatientID": "RFID"}]
        ],
    )

    _tag: int = PrivateAttr(0)
    _vr: str = PrivateAttr("")
    _item_ops: tuple[tuple[Coercion, ...], ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.set_ is None) == (self.remove is None):
            raise _issue("give exactly one of 'set' or 'remove'", "set")
        if self.remove is not None:
            for key in ("vr", "value", "items"):
                if getattr(self, key) is not None:
                    raise _issue(f"'remove' takes no '{key}'", key)
            self._tag = parse_tag(self.remove)
            return self
        assert self.set_ is not None
        tag = parse_tag(self.set_)
        known = tag_vr(tag)
        vr = self.vr or known
        if vr is None:
            kind = "a private" if (tag >> 16) % 2 else "an unknown"
            raise _issue(f"{self.set_} is {kind} tag: give its 'vr'", "set")
        if known is not None and self.vr is not None and not _vr_matches(tag, self.vr):
            raise _issue(f"{self.set_} has VR {known} in the DICOM dictionary, not {self.vr}", "vr")
        if vr not in _SETTABLE:
            raise _issue(f"VR {vr} cannot be set from routes.yaml", "vr" if self.vr else "set")
        if (tag >> 16) % 2 and (tag & 0xFFFF) < 0x0010 and tag & 0xFFFF:
            reason = f"{self.set_}: elements (gggg,0001-000F) of a private group are reserved"
            raise _issue(reason, "set")
        if (tag >> 16) % 2 and 0x0010 <= (tag & 0xFFFF) <= 0x00FF and vr != "LO":
            raise _issue(f"{self.set_} is a private creator: its VR is LO", "vr")
        if vr == "SQ":
            if self.value is not None:
                raise _issue(f"{self.set_} is a sequence: give 'items', not 'value'", "value")
            if self.items is None:
                raise _issue(f"{self.set_} is a sequence: give its 'items'", "set")
            self._item_ops = tuple(_item_ops(item, i) for i, item in enumerate(self.items))
        else:
            if self.items is not None:
                raise _issue(f"'items' is only for sequences; {self.set_} is {vr}", "items")
            if self.value is None:
                raise _issue(f"'set: {self.set_}' needs a 'value'", "set")
            problem = _value_problem(vr, self.value)
            if problem:
                raise _issue(f"{self.set_} ({vr}): {problem}", "value")
        self._tag = tag
        self._vr = vr
        return self

    @property
    def tag(self) -> int:
        """The element's tag as an int (0x00080080)."""
        return self._tag

    @property
    def resolved_vr(self) -> str:
        """The VR used when setting ('' for ``remove``)."""
        return self._vr

    @property
    def item_ops(self) -> tuple[tuple[Coercion, ...], ...]:
        """For a sequence: each item's elements as ``set`` operations."""
        return self._item_ops


def _vr_matches(tag: int, vr: str) -> bool:
    from pydicom.datadict import dictionary_VR

    return vr in str(dictionary_VR(tag)).split(" or ")


def _item_ops(item: dict[str, Any], index: int) -> tuple[Coercion, ...]:
    ops = []
    for key, value in item.items():
        data: dict[str, Any] = {"set": key}
        if isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
            data["items"] = tuple(value)
        elif isinstance(value, dict):
            data.update({k: v for k, v in value.items() if k in ("vr", "value", "items")})
            if set(value) - {"vr", "value", "items"}:
                raise _issue(f"items[{index}].{key}: use {{vr: .., value: ..}}", "items")
        else:
            data["value"] = value
        try:
            ops.append(Coercion.model_validate(data))
        except PydanticCustomError as exc:
            raise _issue(f"items[{index}].{key}: {exc.message()}", "items") from None
        except ValueError as exc:
            raise _issue(f"items[{index}].{key}: {_first_error(exc)}", "items") from None
    return tuple(ops)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc))
    return str(exc)


def _value_problem(vr: str, value: Scalar | tuple[Scalar, ...]) -> str:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, bool):
            return "true/false is not a DICOM value"
        if vr in _INT_RANGE:
            low, high = _INT_RANGE[vr]
            if not isinstance(v, int) or not low <= v <= high:
                return f"expected an integer from {low} to {high}"
            continue
        if vr in _FLOAT_VRS:
            if not isinstance(v, int | float):
                return "expected a number"
            continue
        text = str(v)
        if not text.isascii():
            return "values must be ASCII (the default repertoire, valid in any character set)"
        if "\\" in text:
            return "a backslash separates values: give a list instead"
        if len(text) > _TEXT_MAX[vr]:
            return f"at most {_TEXT_MAX[vr]} characters"
        if vr == "UI" and text and not is_uid(text):
            return f"{text!r} is not a UID"
        if vr == "CS" and not _CS.match(text):
            return "code strings use A-Z, 0-9, space and underscore"
        if vr == "DA" and text and not _DA.match(text):
            return "a date is YYYYMMDD"
        if vr == "IS":
            try:
                int(text)
            except ValueError:
                return f"{text!r} is not an integer string"
        if vr == "DS":
            try:
                float(text)
            except ValueError:
                return f"{text!r} is not a decimal string"
    return ""
