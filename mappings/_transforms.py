"""The named transforms of mapping files, and code table loading.

Touches: files (reads ``{file: tables/x.csv}`` code tables at load time).

A transform is compiled once into ``value -> value``; text transforms apply
to each item of a list value. An empty value ("") stays empty, except for
``default``. Errors raise ValueError without the value (it may be patient
data); the caller adds the source path.

=============  =============================================================
``date``       HL7 v2 TS / CDA TS -> FHIR ``date`` (``19790328`` -> ``1979-03-28``)
``datetime``   -> FHIR ``dateTime``; a time without offset gets the mapping's
               ``timezone`` (FHIR requires an offset with a time)
``{code: T}``  through table T; unknown codes pass unchanged
``{lookup: T}`` through table T; unknown codes give no value
``{system: T}`` a coding system (CDA ``codeSystem``) through table T; an OID not
               in it -> ``urn:oid:<OID>``, an absolute URI passes, anything else
               gives no value (FHIR ``system`` is a URI: never a bare OID)
``oid_uri``    ``1.2.250...`` -> ``urn:oid:1.2.250...`` (not an OID: no value)
``base64``     base64 text -> decoded UTF-8 text
``upper``, ``lower``, ``trim``
``{default: X}`` X when the value is empty
``{split: S}`` text -> list of non-empty parts
``{fn: NAME}`` a registered transform function
=============  =============================================================
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mappings import _registry

__all__ = [
    "Transform",
    "coding_system",
    "compile_transform",
    "hl7_date",
    "hl7_datetime",
    "load_table",
]

Transform = Callable[[Any], Any]

_TS = re.compile(
    r"(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?:(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?P<f>\.\d{1,6})?)?)?)?)?)?(?P<tz>[+-]\d{4}|Z)?"
)
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _each(function: Callable[[str], Any]) -> Transform:
    def apply(value: Any) -> Any:
        if isinstance(value, list):
            return [function(v) if isinstance(v, str) and v else v for v in value]
        if isinstance(value, str) and value:
            return function(value)
        return value

    return apply


def hl7_date(value: str) -> str:
    """``YYYY[MM[DD[...]]]`` -> ``YYYY[-MM[-DD]]``; ValueError when unreadable."""
    m = _TS.fullmatch(value.strip())
    if m is None:
        raise ValueError("not an HL7/CDA TS date (YYYYMMDD...)")
    _check(m)
    return "-".join(p for p in (m["y"], m["mo"], m["d"]) if p)


def hl7_datetime(value: str, zone: ZoneInfo) -> str:
    """TS -> FHIR dateTime; a time always gets seconds and an offset."""
    m = _TS.fullmatch(value.strip())
    if m is None:
        raise ValueError("not an HL7/CDA TS date/time (YYYYMMDDHHMMSS...)")
    when = _check(m)
    if not m["h"]:
        return "-".join(p for p in (m["y"], m["mo"], m["d"]) if p)
    if m["h"] and not m["d"]:
        raise ValueError("a time needs a full date")
    tz = m["tz"]
    if tz == "Z":
        offset = "Z"
    elif tz:
        offset = f"{tz[:3]}:{tz[3:]}"
    else:
        text = when.replace(tzinfo=zone).strftime("%z")
        offset = f"{text[:3]}:{text[3:]}"
    time = f"{m['h']}:{m['mi'] or '00'}:{m['s'] or '00'}{m['f'] or ''}"
    return f"{m['y']}-{m['mo']}-{m['d']}T{time}{offset}"


def _check(m: re.Match[str]) -> datetime:
    try:
        return datetime(
            int(m["y"]),
            int(m["mo"] or 1),
            int(m["d"] or 1),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
        )
    except ValueError:
        raise ValueError("not a valid calendar date/time") from None


def _base64(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not base64 of UTF-8 text") from None


def _oid_uri(value: str) -> str:
    value = value.strip()
    return f"urn:oid:{value}" if _OID.fullmatch(value) else ""


def coding_system(value: str, table: dict[str, str]) -> str:
    """A coding system as FHIR wants it (``{system: T}``): the table's URI, else
    ``urn:oid:<OID>`` (``urn:uuid:`` for a UUID), else the value when it is already an
    absolute URI (a ``urn:oid:`` must hold a valid OID), else ""."""
    value = value.strip()
    known = table.get(value)
    if known:
        return known
    if _OID.fullmatch(value):
        return f"urn:oid:{value}"
    if _UUID.fullmatch(value):
        return f"urn:uuid:{value.lower()}"
    if value[:8].lower() == "urn:oid:":
        return f"urn:oid:{value[8:]}" if _OID.fullmatch(value[8:]) else ""
    return value if _URI.fullmatch(value) else ""


_SIMPLE: dict[str, Callable[[str], Any]] = {
    "date": hl7_date,
    "oid_uri": _oid_uri,
    "base64": _base64,
    "upper": str.upper,
    "lower": str.lower,
    "trim": str.strip,
}
NAMES = sorted([*_SIMPLE, "datetime", "code", "lookup", "system", "default", "split", "fn"])


def compile_transform(
    spec: str | dict[str, Any], tables: dict[str, dict[str, str]], zone: ZoneInfo
) -> Transform:
    """Compile one ``transform:`` item; ValueError with a clear message when wrong."""
    if isinstance(spec, str):
        if spec == "datetime":
            return _each(lambda v: hl7_datetime(v, zone))
        simple = _SIMPLE.get(spec)
        if simple is None:
            raise ValueError(f"unknown transform {spec!r}: expected one of {', '.join(NAMES)}")
        return _each(simple)
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError("a transform is a name or a one-key mapping ({code: TABLE})")
    ((name, arg),) = spec.items()
    if name in ("code", "lookup", "system"):
        table = tables.get(str(arg))
        if table is None:
            known = ", ".join(sorted(tables)) or "none defined"
            raise ValueError(f"unknown table {arg!r} (tables: {known})")
        if name == "code":
            return _each(lambda v: table.get(v, v))
        if name == "system":
            return _each(lambda v: coding_system(v, table))
        return _each(lambda v: table.get(v, ""))
    if name == "default":
        default = "true" if arg is True else "false" if arg is False else str(arg)
        return lambda v: default if v in ("", None, []) else v
    if name == "split":
        sep = str(arg)
        if not sep:
            raise ValueError("split needs a separator")

        def split(value: Any) -> Any:
            if isinstance(value, str):
                return [p for p in (s.strip() for s in value.split(sep)) if p]
            return value

        return split
    if name == "fn":
        found = _registry.lookup(str(arg))
        if found is None:
            raise ValueError(f"unknown function {arg!r}: register it with @mapping_function")
        if found.kind != "transform":
            raise ValueError(f"function {arg!r} is a rule (fn(ctx)): use it as `- fn: {arg}`")
        function = found.function
        return lambda v: function(v) if v not in ("", None, []) else v
    raise ValueError(f"unknown transform {name!r}: expected one of {', '.join(NAMES)}")


def load_table(spec: dict[str, str], base: Path) -> dict[str, str]:
    """An inline table, or ``{file: path}`` read as CSV ``code,value`` (relative to ``base``).

    A first row ``code,value`` is a header. Raises ValueError when unreadable.
    """
    if set(spec) != {"file"}:
        return dict(spec)
    path = base / spec["file"]
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read table file {spec['file']!r}: {exc}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["code", "value"]:
        rows = rows[1:]
    table: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ValueError(f"{spec['file']}: row {number} has no value column")
        table[row[0].strip()] = row[1].strip()
    return table
