"""The identity stand-in's answers to PDQm and PIXm requests, without I/O.

Touches: nothing (the patients are passed in; :meth:`StandinService.from_file` reads a file).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from identity.traits import normalise_trait
from standins.identity._fhir import (
    INS_OIDS,
    SYSTEM_URI,
    PatientEntry,
    Refused,
    StandinResponse,
    Violation,
    capability_statement,
    fhir_format,
    load_patients,
    outcome,
    patient_resource,
    split_unescaped,
    token,
)

__all__ = ["StandinService"]

log = logging.getLogger("standins.identity")

_PDQM_PARAMS = frozenset(
    {"_id", "active", "family", "given", "identifier", "birthdate", "gender", "_format"}
)
_PDQM_NOT_HERE = frozenset(
    {
        "telecom",
        "address",
        "address-city",
        "address-country",
        "address-postalcode",
        "address-state",
        "mothersMaidenName",
    }
)
_STRING_PARAMS = frozenset({"family", "given"}) | (_PDQM_NOT_HERE - {"telecom"})
_ONCE = frozenset({"_id", "active", "gender", "_format", "birthplace"})
_GENDERS = frozenset({"male", "female", "other", "unknown"})
_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}(-\d{2}(-\d{2})?)?)$")
_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_MAX_VIOLATIONS = 10_000


class StandinService:
    """The stand-in's answers, without I/O: ``handle(method, target, headers, body)``.

    ``fail_status`` makes every request answer that status (e.g. 503) and ``delay`` makes
    the server wait before answering (timeouts); ``requests`` keeps the last 1,000
    (method, path, parameters) for tests.
    """

    def __init__(
        self, records: Sequence[Mapping[str, Any]], regional_system: str, *, base: str = "/fhir"
    ) -> None:
        if not SYSTEM_URI.match(regional_system):
            raise ValueError("regional_system is a URI (urn:oid:<oid> or http(s)://...)")
        self.regional_system = regional_system
        self.base = "/" + base.strip("/") if base.strip("/") else ""
        self.violations: list[Violation] = []
        self.requests: deque[tuple[str, str, tuple[tuple[str, str], ...]]] = deque(maxlen=1000)
        self.request_count = 0
        self.fail_status: int | None = None
        self.delay = 0.0
        self._patients = [self._index(r) for r in records]
        self._systems = frozenset(s for p in self._patients for s, _ in p.identifiers) | {
            f"urn:oid:{o}" for o in INS_OIDS
        }

    @classmethod
    def from_file(cls, path: Path, *, base: str = "/fhir") -> StandinService:
        regional_system, records = load_patients(path)
        return cls(records, regional_system, base=base)

    def _index(self, r: Mapping[str, Any]) -> PatientEntry:
        ids: list[tuple[str, str]] = []
        if r.get("ins"):
            ids.append((f"urn:oid:{r.get('ins_oid') or INS_OIDS[0]}", str(r["ins"])))
        if r.get("regional_id"):
            ids.append((self.regional_system, str(r["regional_id"])))
        for i in r.get("identifiers") or ():
            ids.append((str(i["system"]), str(i["value"])))
        names = tuple(normalise_trait(str(r[k])) for k in ("birth_name", "used_name") if r.get(k))
        given = tuple(normalise_trait(str(g)) for g in r.get("given") or ())
        return PatientEntry(r, str(r["id"]), tuple(ids), names, given)

    # --- HTTP ------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> StandinResponse:
        """The answer to one request (``target``: path and query, as on the request line)."""
        self.request_count += 1
        parts = urlsplit(target)
        path = parts.path
        try:
            params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
            if method == "POST" and "x-www-form-urlencoded" in headers.get("content-type", ""):
                params += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            params = []
        self.requests.append((method, path, tuple(params)))
        try:
            if self.fail_status is not None:
                raise Refused(
                    self.fail_status, "transient", "stand-in told to fail", violation=False
                )
            self._check_accept(headers)
            return self._route(method, path, params)
        except Refused as exc:
            if exc.violation and len(self.violations) < _MAX_VIOLATIONS:
                self.violations.append(Violation(method, path, exc.status, exc.diagnostics))
                log.info("stand-in refused %s %s: %d %s", method, path, exc.status, exc.code)
            return StandinResponse(exc.status, outcome(exc.code, exc.diagnostics))
        except Exception:  # noqa: BLE001 - a stand-in bug answers 500, the server goes on
            log.exception("stand-in failed on %s %s", method, path)
            return StandinResponse(500, outcome("exception", "stand-in internal error"))

    def _check_accept(self, headers: Mapping[str, str]) -> None:
        accept = headers.get("accept", "").lower()
        if accept and "json" not in accept and "*/*" not in accept:
            raise Refused(406, "not-supported", "Accept: this stand-in answers JSON only")

    def _route(self, method: str, path: str, params: list[tuple[str, str]]) -> StandinResponse:
        if not path.startswith(self.base + "/"):
            raise Refused(404, "not-found", f"no such path: FHIR base is {self.base or '/'}")
        rest = path[len(self.base) + 1 :]
        if rest == "metadata" and method == "GET":
            return StandinResponse(200, capability_statement())
        if rest == "Patient" and method == "GET":
            return self._search(params)
        if rest == "Patient/_search" and method == "POST":
            return self._search(params)
        if rest == "Patient/$ihe-pix":
            if method != "GET":
                raise Refused(405, "not-supported", "$ihe-pix is called with GET (ITI-83)")
            return self._pix(params)
        if rest.startswith("Patient/") and "/" not in rest[8:] and method == "GET":
            return self._read(rest[8:], params)
        raise Refused(404, "not-found", f"no such operation: {method} {rest}")

    # --- PDQm ------------------------------------------------------------------------

    def _search(self, params: list[tuple[str, str]]) -> StandinResponse:
        seen: dict[str, int] = {}
        filters: list[tuple[str, str | None, str]] = []
        for raw_name, value in params:
            name, _, modifier = raw_name.partition(":")
            if name not in _PDQM_PARAMS and name not in _PDQM_NOT_HERE and name != "birthplace":
                raise Refused(400, "not-supported", f"unknown search parameter {name!r}")
            if name in _PDQM_NOT_HERE:
                raise Refused(400, "not-supported", f"{name}: not implemented by the stand-in")
            if modifier and not (modifier == "exact" and name in _STRING_PARAMS):
                raise Refused(400, "invalid", f"{raw_name}: only :exact, on string parameters")
            if value == "":
                raise Refused(400, "invalid", f"{name}: empty value")
            seen[name] = seen.get(name, 0) + 1
            if name in _ONCE and seen[name] > 1:
                raise Refused(400, "invalid", f"{name}: given more than once")
            filters.append(self._check_filter(name, modifier or None, value))
        if not [f for f in filters if f[0] != "_format"]:
            raise Refused(400, "invalid", "a search needs at least one criterion")
        matches = [p for p in self._patients if all(self._matches(p, *f) for f in filters)]
        query = "&".join(f"{k}={v}" for k, v in params)
        return StandinResponse(
            200,
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "link": [{"relation": "self", "url": f"{self.base}/Patient?{query}"}],
                "entry": [
                    {
                        "fullUrl": f"{self.base}/Patient/{p.id}",
                        "resource": patient_resource(p),
                        "search": {"mode": "match"},
                    }
                    for p in matches
                ],
            },
        )

    def _check_filter(
        self, name: str, modifier: str | None, value: str
    ) -> tuple[str, str | None, str]:
        if name == "_format":
            fhir_format(value)
        elif name == "identifier":
            for tok in split_unescaped(value, ","):
                token(tok, name)
        elif name == "birthdate":
            m = _DATE.match(value)
            if m is None:
                raise Refused(400, "invalid", "birthdate: a FHIR date YYYY[-MM[-DD]] with a prefix")
            if m.group(1) in ("sa", "eb", "ap"):
                raise Refused(400, "not-supported", "birthdate: sa/eb/ap not implemented")
        elif name == "gender":
            if any(g not in _GENDERS for g in value.split(",")):
                raise Refused(400, "invalid", "gender: male, female, other or unknown")
        elif name == "active":
            if value not in ("true", "false"):
                raise Refused(400, "invalid", "active: true or false")
        elif name == "birthplace":
            if not _INSEE.match(value):
                raise Refused(400, "invalid", "birthplace: an INSEE code (5 characters)")
        return name, modifier, value

    def _matches(self, p: PatientEntry, name: str, modifier: str | None, value: str) -> bool:
        r = p.record
        if name == "_format":
            return True
        if name == "_id":
            return p.id == value
        if name == "active":
            return (r.get("active", True) is not False) == (value == "true")
        if name == "identifier":
            return any(self._has(p, *token(tok, name)) for tok in split_unescaped(value, ","))
        if name in ("family", "given"):
            values = p.names if name == "family" else p.given
            if modifier == "exact":
                raw = (
                    [str(r.get("birth_name", "")), str(r.get("used_name", ""))]
                    if name == "family"
                    else [str(g) for g in r.get("given") or ()]
                )
                return value in raw
            wanted = normalise_trait(value)
            return any(v.startswith(wanted) for v in values)
        if name == "gender":
            return str(r.get("gender", "")) in value.split(",")
        if name == "birthplace":
            return str(r.get("birth_place", "")).upper() == value.upper()
        if name == "birthdate":
            return _date_matches(str(r.get("birth_date", "")), value)
        return False

    def _has(self, p: PatientEntry, system: str | None, value: str) -> bool:
        return any(
            (system is None or s == system) and (not value or v == value) for s, v in p.identifiers
        )

    # --- PIXm ------------------------------------------------------------------------

    def _pix(self, params: list[tuple[str, str]]) -> StandinResponse:
        sources = [v for k, v in params if k == "sourceIdentifier"]
        targets = [v for k, v in params if k == "targetSystem"]
        for k, v in params:
            if k not in ("sourceIdentifier", "targetSystem", "_format"):
                raise Refused(400, "invalid", f"$ihe-pix: unknown parameter {k!r}")
            if v == "":
                raise Refused(400, "invalid", f"$ihe-pix: {k} is empty")
            if k == "_format":
                fhir_format(v)
        if len(sources) != 1:
            raise Refused(400, "invalid", "$ihe-pix: exactly one sourceIdentifier (ITI-83)")
        system, value = token(sources[0], "sourceIdentifier")
        if not system or not value:
            raise Refused(400, "invalid", "sourceIdentifier: <system>|<value>, both given")
        for t in targets:
            if not SYSTEM_URI.match(t):
                raise Refused(400, "invalid", "targetSystem: a URI (urn:oid:<oid>, http(s)://)")
        if system not in self._systems:
            raise Refused(400, "code-invalid", "sourceIdentifier Assigning Authority not found")
        if any(t not in self._systems for t in targets):
            raise Refused(403, "code-invalid", "targetSystem not found")
        patient = next((p for p in self._patients if (system, value) in p.identifiers), None)
        if patient is None:
            raise Refused(
                404, "not-found", "sourceIdentifier Patient Identifier not found", violation=False
            )
        out: list[dict[str, Any]] = [
            {"name": "targetIdentifier", "valueIdentifier": {"system": s, "value": v}}
            for s, v in patient.identifiers
            if (s, v) != (system, value) and (not targets or s in targets)
        ]
        out.append({"name": "targetId", "valueReference": {"reference": f"Patient/{patient.id}"}})
        return StandinResponse(200, {"resourceType": "Parameters", "parameter": out})

    # --- read, metadata ----------------------------------------------------------------

    def _read(self, rid: str, params: list[tuple[str, str]]) -> StandinResponse:
        for k, v in params:
            if k != "_format":
                raise Refused(400, "invalid", f"read: unknown parameter {k!r}")
            fhir_format(v)
        for p in self._patients:
            if p.id == rid:
                return StandinResponse(200, patient_resource(p))
        raise Refused(404, "not-found", "no Patient with this id", violation=False)


def _date_matches(born: str, query: str) -> bool:
    m = _DATE.match(query)
    if m is None or not born:
        return False
    prefix, value = m.group(1) or "eq", m.group(2)
    if prefix in ("eq", "ne"):
        equal = born.startswith(value)
        return equal if prefix == "eq" else not equal
    head = born[: len(value)]
    return {
        "gt": head > value,
        "lt": head < value,
        "ge": head >= value,
        "le": head <= value,
    }[prefix]
