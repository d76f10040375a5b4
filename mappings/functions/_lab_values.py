"""CDA lab observation values and reference ranges as FHIR ``value[x]`` and ``referenceRange``.

Touches: nothing.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from mappings.functions._lab_terms import ABSENT, NORMAL_RANGE
from mappings.functions.cda_types import (
    HL7,
    XSI_TYPE,
    codeable_concept,
    first_child,
    quantity,
    range_of,
    text_of,
    ts_datetime,
)

__all__ = [
    "interval_value",
    "observation_value",
    "point_range_with_other_text",
    "reference_range",
    "time_of",
]

Element = etree._Element
Json = dict[str, Any]
_Q = f"{{{HL7}}}"


def observation_value(obs: Element, ids: dict[str, Element]) -> Json:
    """The FHIR ``value[x]`` (or ``dataAbsentReason``) of a CDA observation's ``value``."""
    value = first_child(obs, f"{_Q}value")
    if value is None:
        return {}
    null = value.get("nullFlavor")
    if null:
        code = "not-applicable" if null == "NA" else "unknown"
        reason = {"coding": [{"system": ABSENT, "code": code}], "text": null}
        return {"dataAbsentReason": reason}
    kind = (value.get(XSI_TYPE) or "").partition(":")[2] or value.get(XSI_TYPE) or ""
    if kind == "PQ":
        q = quantity(value)
        return {"valueQuantity": q} if q else {}
    if kind in ("REAL", "INT", "MO"):
        q = quantity(value)
        if q and kind == "INT" and isinstance(q["value"], int) and "unit" not in q:
            return {"valueInteger": q["value"]}
        return {"valueQuantity": q} if q else {}
    if kind == "IVL_PQ":
        return interval_value(value)
    if kind in ("CD", "CE", "CV", "CO", "CS"):
        c = codeable_concept(value, ids)
        return {"valueCodeableConcept": c} if c else {}
    if kind == "BL":
        flag = value.get("value")
        return {"valueBoolean": flag == "true"} if flag in ("true", "false") else {}
    if kind in ("TS", "IVL_TS"):
        when = time_of(value)
        return {"valueDateTime": when} if when else {}
    if kind == "RTO" or kind.startswith("RTO_"):
        num = quantity(first_child(value, f"{_Q}numerator"))
        den = quantity(first_child(value, f"{_Q}denominator"))
        ratio = {k: v for k, v in (("numerator", num), ("denominator", den)) if v}
        return {"valueRatio": ratio} if ratio else {}
    text = text_of(value, ids)  # ST, ED, SC and anything else readable
    return {"valueString": text} if text else {}


def reference_range(rr: Element, ids: dict[str, Element]) -> Json | None:
    """A CDA ``referenceRange`` as a FHIR ``referenceRange`` (None when it says nothing)."""
    rng = first_child(rr, f"{_Q}observationRange")
    if rng is None:
        return None
    out: Json = {}
    value = first_child(rng, f"{_Q}value")
    if value is not None:
        bounds = range_of(value)
        if bounds:
            out.update(bounds)
        elif text_of(value, ids):
            out["text"] = text_of(value, ids)
    text = text_of(first_child(rng, f"{_Q}text"), ids)
    if text and "text" not in out:
        out["text"] = text
    if not out:
        return None
    interpretation = first_child(rng, f"{_Q}interpretationCode")
    if interpretation is not None and interpretation.get("code") == "N":
        out["type"] = NORMAL_RANGE
    return out


def interval_value(value: Element) -> Json:
    low, high = first_child(value, f"{_Q}low"), first_child(value, f"{_Q}high")
    has_low = low is not None and quantity(low) is not None
    has_high = high is not None and quantity(high) is not None
    if has_low and has_high:
        r = range_of(value)
        return {"valueRange": r} if r else {}
    if has_low and low is not None:
        q = quantity(low, ">" if low.get("inclusive") == "false" else ">=")
        return {"valueQuantity": q} if q else {}
    if has_high and high is not None:
        q = quantity(high, "<" if high.get("inclusive") == "false" else "<=")
        return {"valueQuantity": q} if q else {}
    center = first_child(value, f"{_Q}center")
    q = quantity(center)
    return {"valueQuantity": q} if q else {}


_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def point_range_with_other_text(rng: Json) -> bool:
    """True when ``low`` equals ``high`` but the narrative text names another number
    (or none): the bounds were likely filled from one end of the range."""
    low, high, text = rng.get("low"), rng.get("high"), rng.get("text")
    if not low or not high or not text or low.get("value") != high.get("value"):
        return False
    numbers = {float(n.replace(",", ".")) for n in _NUMBER.findall(str(text))}
    return numbers != {float(low["value"])}


def time_of(element: Element | None) -> str:
    """TS or IVL_TS -> dateTime: ``@value``, else ``center``, ``low``, ``high``."""
    if element is None:
        return ""
    if element.get("value"):
        return ts_datetime(element.get("value"))
    for part in ("center", "low", "high"):
        inner = first_child(element, f"{_Q}{part}")
        if inner is not None and inner.get("value"):
            return ts_datetime(inner.get("value"))
    return ""
