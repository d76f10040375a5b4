"""Turn CDA R2 data types (TS, II, CD, PQ, IVL_PQ...) into FHIR R4 JSON values.

Touches: files (reads ``mappings/tables/code-systems.csv`` once, on first use).

Small pure helpers shared by the CDA mapping functions. CDA and FHIR names
follow the HL7 *CDA to FHIR* mapping guide (``ii`` -> Identifier, ``cd`` ->
CodeableConcept, ``pq`` -> Quantity, ``ivl_pq`` -> Range, ``ts`` -> dateTime).
Every function returns ``None`` (or "") for an absent or ``nullFlavor``
element, so callers can skip empty values; none of them logs anything.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from mappings._transforms import coding_system, load_table

__all__ = [
    "HL7",
    "NS",
    "XSI_TYPE",
    "codeable_concept",
    "coding",
    "first_child",
    "identifier",
    "ii_identifier",
    "quantity",
    "range_of",
    "system_uri",
    "text_of",
    "ts_date",
    "ts_datetime",
    "ts_instant",
]

HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7, "xsi": "http://www.w3.org/2001/XMLSchema-instance", "sdtc": "urn:hl7-org:sdtc"}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
UCUM = "http://unitsofmeasure.org"

_TABLES = Path(__file__).resolve().parent.parent / "tables"
_TS = re.compile(
    r"(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?P<f>\.\d+)?)?)?)?(?P<tz>[+-]\d{4}|Z)?"
)
_LOCAL = ZoneInfo("Europe/Paris")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_INTEGER = re.compile(r"[+-]?\d+")

Element = etree._Element
Json = dict[str, Any]


@cache
def _systems() -> dict[str, str]:
    return load_table({"file": "code-systems.csv"}, _TABLES)


@lru_cache(maxsize=1024)
def system_uri(oid: str) -> str:
    """The FHIR system of a CDA ``codeSystem``: the table's URI, else ``urn:oid:<oid>``
    (the ``{system: code_system}`` transform: "" for what is neither an OID nor a URI).
    Remembered: a document names the same few code systems again and again."""
    return coding_system(oid, _systems()) if oid.strip() else ""


def _parts(value: str | None) -> re.Match[str] | None:
    return _TS.fullmatch(value.strip()) if value else None


def _offset(tz: str | None, naive: datetime) -> str:
    """``+0100`` -> ``+01:00``; no offset: Europe/Paris at that time (French documents)."""
    if tz == "Z":
        return "Z"
    if tz:
        return f"{tz[:3]}:{tz[3:]}"
    text = naive.replace(tzinfo=_LOCAL).strftime("%z")
    return f"{text[:3]}:{text[3:]}"


def ts_date(value: str | None) -> str:
    """CDA TS -> FHIR ``date`` (``1979``, ``1979-03``, ``1979-03-28``); "" when unreadable."""
    m = _parts(value)
    if m is None:
        return ""
    return "-".join(p for p in (m["y"], m["mo"], m["d"]) if p)


def ts_datetime(value: str | None) -> str:
    """CDA TS -> FHIR ``dateTime``; a time always gets an offset (Europe/Paris when missing)."""
    return _ts_datetime(value) if value else ""


@lru_cache(maxsize=1024)
def _ts_datetime(value: str) -> str:
    # remembered: a report repeats the same few times (5 us each: datetime, zone offset)
    m = _parts(value)
    if m is None:
        return ""
    if not m["h"]:
        return ts_date(value)
    try:
        naive = datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"] or 0), int(m["s"] or 0)
        )
    except ValueError:
        return ""
    time = f"{m['h']}:{m['mi'] or '00'}:{m['s'] or '00'}{m['f'] or ''}"
    return f"{m['y']}-{m['mo']}-{m['d']}T{time}{_offset(m['tz'], naive)}"


def ts_instant(value: str | None) -> str:
    """CDA TS -> FHIR ``instant`` (needs a time: "" for a bare date)."""
    text = ts_datetime(value)
    return text if "T" in text else ""


def first_child(element: Element, tag: str) -> Element | None:
    """``element.find(tag)`` for a plain tag (no path): its first child so named, without
    ElementPath's parsing (half the time; the lab builder asks ~800 times per report)."""
    return next(element.iterchildren(tag), None)


def text_of(element: Element | None, ids: dict[str, Element] | None = None) -> str:
    """The text of ``element``; an ``originalText/reference`` or ``reference`` is resolved
    through ``ids`` (the document's ``@ID`` index) to the narrative it points to."""
    if element is None:
        return ""
    ref = first_child(element, f"{{{HL7}}}reference")
    if ref is not None and ids is not None:
        target = ids.get((ref.get("value") or "").lstrip("#"))
        if target is not None:
            return " ".join("".join(target.itertext()).split())
    return " ".join("".join(element.itertext()).split())


def coding(element: Element | None) -> Json | None:
    """``code``/``codeSystem``/``displayName`` of a CD -> Coding; None without a code."""
    if element is None or not element.get("code"):
        return None
    out: Json = {}
    system = system_uri(element.get("codeSystem") or "")
    if system:
        out["system"] = system
    out["code"] = element.get("code", "").strip()
    display = element.get("displayName")
    if display:
        out["display"] = display.strip()
    return out


def codeable_concept(element: Element | None, ids: dict[str, Element] | None = None) -> Json | None:
    """CD/CE/CV (and its translations) -> CodeableConcept; None when it holds nothing."""
    if element is None:
        return None
    codings = [c for c in [coding(element)] if c is not None]
    for translation in element.findall(f"{{{HL7}}}translation"):
        extra = coding(translation)
        if extra is not None:
            codings.append(extra)
    out: Json = {}
    if codings:
        out["coding"] = codings
    text = text_of(first_child(element, f"{{{HL7}}}originalText"), ids)
    if text:
        out["text"] = text
    return out or None


def _decimal(text: str | None) -> float | int | None:
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if _INTEGER.fullmatch(text.strip()) else number


def quantity(element: Element | None, comparator: str = "") -> Json | None:
    """PQ (``value`` + UCUM ``unit``) -> Quantity; None without a numeric value."""
    if element is None:
        return None
    number = _decimal(element.get("value"))
    if number is None:
        return None
    out: Json = {"value": number}
    if comparator:
        out["comparator"] = comparator
    unit = element.get("unit")
    if unit and unit != "1":
        out.update(unit=unit, system=UCUM, code=unit)
    return out


def range_of(element: Element | None) -> Json | None:
    """IVL_PQ -> Range (``low``/``high``); None when neither bound has a value."""
    if element is None:
        return None
    out: Json = {}
    for bound in ("low", "high"):
        q = quantity(first_child(element, f"{{{HL7}}}{bound}"))
        if q is not None:
            out[bound] = q
    return out or None


def identifier(element: Element | None) -> Json | None:
    """II -> Identifier (see :func:`ii_identifier`); None for an absent or null II."""
    if element is None:
        return None
    return ii_identifier(element.get("root") or "", element.get("extension") or "")


def ii_identifier(root: str, extension: str) -> Json | None:
    """II ``root`` + ``extension`` -> Identifier: ``urn:oid:<root>`` (or ``urn:uuid:``) | extension;
    ``root`` alone (an OID or UUID naming the thing itself) -> ``urn:ietf:rfc:3986`` | URN."""
    root, ext = root.strip(), extension.strip()
    if not root:
        return {"value": ext} if ext else None
    if ext:
        system = f"urn:uuid:{root.lower()}" if _UUID.fullmatch(root) else system_uri(root)
        return {"system": system, "value": ext}
    if _UUID.fullmatch(root):
        return {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{root.lower()}"}
    if _OID.fullmatch(root):
        return {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{root}"}
    return {"value": root}
