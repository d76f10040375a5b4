"""A stand-in for the regional identity server: PDQm and PIXm over HTTP, from a JSON file.

Touches: network (binds a server socket), files (reads the patients file).

THIS IS NOT AN IDENTITY SERVER. The regional identity server (which fronts the national
INSi teleservice) cannot run here; this stand-in answers the two transactions the engine
uses, for the tests and the bundled demo, and CHECKS each request against their shapes so
that a client bug shows up as a refusal rather than as a silent empty answer:

* PDQm [ITI-78] ``GET [base]/Patient?...`` (and ``POST [base]/Patient/_search``): the
  parameters of ITI TF-2 3.78.4.1.2.1 (``_id``, ``active``, ``family``, ``given``,
  ``identifier``, ``birthdate``, ``gender``; ``telecom``, ``address*`` and
  ``mothersMaidenName`` are refused as not implemented here) plus ``birthplace`` (INSEE
  code, a French extension) and ``_format``; ``:exact`` is the only modifier, on strings.
* PIXm [ITI-83] ``GET [base]/Patient/$ihe-pix?sourceIdentifier=<system>|<value>
  {&targetSystem=<uri>}{&_format=...}``: 400 when the source's domain is unknown, 403 when a
  target system is, 404 when the identifier is (ITI TF-2 3.83.4.2.2.2-4).
* ``GET [base]/Patient/<id>`` and ``GET [base]/metadata``.

A malformed request (unknown parameter, empty value, a token that is not ``system|value``
with a URI system, ``1.2.3|x`` without ``urn:oid:``, a date that is not a FHIR date, a
gender outside the value set, no or several ``sourceIdentifier``, an ``_format`` that is
not JSON) is answered 400 (406 for XML) with an ``OperationOutcome`` and recorded in
:attr:`StandinService.violations`, so a test can assert that none happened.

Patients file (JSON)::

    {"regional_system": "urn:oid:1.2.250.1.999.1.1",
     "patients": [{"id": "R0001", "regional_id": "R0001",
                   "ins": "279035121518989", "ins_oid": "1.2.250.1.213.1.4.10",
                   "birth_name": "PAT-TROIS", "used_name": "", "given": ["DOMINIQUE"],
                   "birth_date": "1979-03-28", "gender": "female", "birth_place": "63220",
                   "active": true, "replaced_by": "",
                   "identifiers": [{"system": "urn:oid:1.2.250.1.999.2.1", "value": "000003"}]}]}

Each record is served as an FR Core Patient (INS identifier under its OID, official name
with the birth given names extension, patient-birthPlace with the INSEE code extension).
HTTP/1.1 framing is h11's, as in ``connectors/http_in.py`` (already a dependency; no web
framework for a test peer); requests are handled by :meth:`StandinService.handle`,
which has no I/O, so unit tests drive it through ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11

from identity.pdqm import BIRTH_LIST_GIVEN_NAME_EXT, BIRTH_PLACE_EXT, INS_OIDS, INSEE_CODE_EXT
from identity.traits import normalise_trait

__all__ = ["StandinResponse", "StandinServer", "StandinService", "Violation", "load_patients"]

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json; charset=utf-8"
_COMMUNE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
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
_SYSTEM = re.compile(
    r"^(urn:oid:[0-2](\.(0|[1-9][0-9]*))+|urn:[A-Za-z0-9][A-Za-z0-9-]*:\S+|https?://\S+)$"
)
_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}(-\d{2}(-\d{2})?)?)$")
_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
_XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml"})
_MAX_BODY = 64 * 1024
_MAX_VIOLATIONS = 10_000


@dataclass(frozen=True, slots=True)
class Violation:
    """A request the stand-in refused: what was asked and why (parameter names, no values)."""

    method: str
    path: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class StandinResponse:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


class _Refused(Exception):
    def __init__(self, status: int, code: str, diagnostics: str, violation: bool = True) -> None:
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.violation = violation
        super().__init__(diagnostics)


def _outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def _split_unescaped(value: str, sep: str) -> list[str]:
    """Splits on ``sep`` not preceded by a backslash (FHIR search escaping)."""
    parts, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _token(raw: str, name: str) -> tuple[str | None, str]:
    """``system|value`` -> (system, value); ``value`` -> (None, value); checks the system."""
    pieces = _split_unescaped(raw, "|")
    if len(pieces) == 1:
        if not pieces[0]:
            raise _Refused(400, "invalid", f"{name}: empty token")
        return None, _unescape(pieces[0])
    if len(pieces) != 2:
        raise _Refused(400, "invalid", f"{name}: a token is system|value (one unescaped '|')")
    system, value = _unescape(pieces[0]), _unescape(pieces[1])
    if not system and not value:
        raise _Refused(400, "invalid", f"{name}: a token needs a system or a value")
    if system and not _SYSTEM.match(system):
        raise _Refused(
            400,
            "invalid",
            f"{name}: the system of a token is a URI (urn:oid:<oid>, urn:..., http(s)://...)",
        )
    return system, value


def _fhir_format(value: str) -> None:
    media = value.split(";", 1)[0].strip().lower()
    if media in _JSON_FORMATS:
        return
    if media in _XML_FORMATS:
        raise _Refused(406, "not-supported", "_format: this stand-in answers JSON only")
    raise _Refused(400, "invalid", "_format: not a FHIR format (json, xml or a mime type)")


@dataclass
class _Patient:
    record: Mapping[str, Any]
    id: str
    identifiers: tuple[tuple[str, str], ...]
    names: tuple[str, ...]  # normalised birth and used names
    given: tuple[str, ...]  # normalised given names


def load_patients(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(regional_system, patient records) from a patients file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("patients"), list):
        raise ValueError(f"{path}: expected {{'regional_system': ..., 'patients': [...]}}")
    return str(data.get("regional_system", "")), list(data["patients"])


class StandinService:
    """The stand-in's answers, without I/O: ``handle(method, target, headers, body)``.

    ``fail_status`` makes every request answer that status (e.g. 503) and ``delay`` makes
    the server wait before answering (timeouts); ``requests`` keeps the last 1,000
    (method, path, parameters) for tests.
    """

    def __init__(
        self, records: Sequence[Mapping[str, Any]], regional_system: str, *, base: str = "/fhir"
    ) -> None:
        if not _SYSTEM.match(regional_system):
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

    def _index(self, r: Mapping[str, Any]) -> _Patient:
        ids: list[tuple[str, str]] = []
        if r.get("ins"):
            ids.append((f"urn:oid:{r.get('ins_oid') or INS_OIDS[0]}", str(r["ins"])))
        if r.get("regional_id"):
            ids.append((self.regional_system, str(r["regional_id"])))
        for i in r.get("identifiers") or ():
            ids.append((str(i["system"]), str(i["value"])))
        names = tuple(normalise_trait(str(r[k])) for k in ("birth_name", "used_name") if r.get(k))
        given = tuple(normalise_trait(str(g)) for g in r.get("given") or ())
        return _Patient(r, str(r["id"]), tuple(ids), names, given)

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
                raise _Refused(
                    self.fail_status, "transient", "stand-in told to fail", violation=False
                )
            self._check_accept(headers)
            return self._route(method, path, params)
        except _Refused as exc:
            if exc.violation and len(self.violations) < _MAX_VIOLATIONS:
                self.violations.append(Violation(method, path, exc.status, exc.diagnostics))
                log.info("stand-in refused %s %s: %d %s", method, path, exc.status, exc.code)
            return StandinResponse(exc.status, _outcome(exc.code, exc.diagnostics))
        except Exception:  # noqa: BLE001 - a stand-in bug answers 500, the server goes on
            log.exception("stand-in failed on %s %s", method, path)
            return StandinResponse(500, _outcome("exception", "stand-in internal error"))

    def _check_accept(self, headers: Mapping[str, str]) -> None:
        accept = headers.get("accept", "").lower()
        if accept and "json" not in accept and "*/*" not in accept:
            raise _Refused(406, "not-supported", "Accept: this stand-in answers JSON only")

    def _route(self, method: str, path: str, params: list[tuple[str, str]]) -> StandinResponse:
        if not path.startswith(self.base + "/"):
            raise _Refused(404, "not-found", f"no such path: FHIR base is {self.base or '/'}")
        rest = path[len(self.base) + 1 :]
        if rest == "metadata" and method == "GET":
            return StandinResponse(200, self._capabilities())
        if rest == "Patient" and method == "GET":
            return self._search(params)
        if rest == "Patient/_search" and method == "POST":
            return self._search(params)
        if rest == "Patient/$ihe-pix":
            if method != "GET":
                raise _Refused(405, "not-supported", "$ihe-pix is called with GET (ITI-83)")
            return self._pix(params)
        if rest.startswith("Patient/") and "/" not in rest[8:] and method == "GET":
            return self._read(rest[8:], params)
        raise _Refused(404, "not-found", f"no such operation: {method} {rest}")

    # --- PDQm ------------------------------------------------------------------------

    def _search(self, params: list[tuple[str, str]]) -> StandinResponse:
        seen: dict[str, int] = {}
        filters: list[tuple[str, str | None, str]] = []
        for raw_name, value in params:
            name, _, modifier = raw_name.partition(":")
            if name not in _PDQM_PARAMS and name not in _PDQM_NOT_HERE and name != "birthplace":
                raise _Refused(400, "not-supported", f"unknown search parameter {name!r}")
            if name in _PDQM_NOT_HERE:
                raise _Refused(400, "not-supported", f"{name}: not implemented by the stand-in")
            if modifier and not (modifier == "exact" and name in _STRING_PARAMS):
                raise _Refused(400, "invalid", f"{raw_name}: only :exact, on string parameters")
            if value == "":
                raise _Refused(400, "invalid", f"{name}: empty value")
            seen[name] = seen.get(name, 0) + 1
            if name in _ONCE and seen[name] > 1:
                raise _Refused(400, "invalid", f"{name}: given more than once")
            filters.append(self._check_filter(name, modifier or None, value))
        if not [f for f in filters if f[0] != "_format"]:
            raise _Refused(400, "invalid", "a search needs at least one criterion")
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
                        "resource": self._resource(p),
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
            _fhir_format(value)
        elif name == "identifier":
            for tok in _split_unescaped(value, ","):
                _token(tok, name)
        elif name == "birthdate":
            m = _DATE.match(value)
            if m is None:
                raise _Refused(
                    400, "invalid", "birthdate: a FHIR date YYYY[-MM[-DD]] with a prefix"
                )
            if m.group(1) in ("sa", "eb", "ap"):
                raise _Refused(400, "not-supported", "birthdate: sa/eb/ap not implemented")
        elif name == "gender":
            if any(g not in _GENDERS for g in value.split(",")):
                raise _Refused(400, "invalid", "gender: male, female, other or unknown")
        elif name == "active":
            if value not in ("true", "false"):
                raise _Refused(400, "invalid", "active: true or false")
        elif name == "birthplace":
            if not _INSEE.match(value):
                raise _Refused(400, "invalid", "birthplace: an INSEE code (5 characters)")
        return name, modifier, value

    def _matches(self, p: _Patient, name: str, modifier: str | None, value: str) -> bool:
        r = p.record
        if name == "_format":
            return True
        if name == "_id":
            return p.id == value
        if name == "active":
            return (r.get("active", True) is not False) == (value == "true")
        if name == "identifier":
            return any(self._has(p, *_token(tok, name)) for tok in _split_unescaped(value, ","))
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

    def _has(self, p: _Patient, system: str | None, value: str) -> bool:
        return any(
            (system is None or s == system) and (not value or v == value) for s, v in p.identifiers
        )

    # --- PIXm ------------------------------------------------------------------------

    def _pix(self, params: list[tuple[str, str]]) -> StandinResponse:
        sources = [v for k, v in params if k == "sourceIdentifier"]
        targets = [v for k, v in params if k == "targetSystem"]
        for k, v in params:
            if k not in ("sourceIdentifier", "targetSystem", "_format"):
                raise _Refused(400, "invalid", f"$ihe-pix: unknown parameter {k!r}")
            if v == "":
                raise _Refused(400, "invalid", f"$ihe-pix: {k} is empty")
            if k == "_format":
                _fhir_format(v)
        if len(sources) != 1:
            raise _Refused(400, "invalid", "$ihe-pix: exactly one sourceIdentifier (ITI-83)")
        system, value = _token(sources[0], "sourceIdentifier")
        if not system or not value:
            raise _Refused(400, "invalid", "sourceIdentifier: <system>|<value>, both given")
        for t in targets:
            if not _SYSTEM.match(t):
                raise _Refused(400, "invalid", "targetSystem: a URI (urn:oid:<oid>, http(s)://)")
        if system not in self._systems:
            raise _Refused(400, "code-invalid", "sourceIdentifier Assigning Authority not found")
        if any(t not in self._systems for t in targets):
            raise _Refused(403, "code-invalid", "targetSystem not found")
        patient = next((p for p in self._patients if (system, value) in p.identifiers), None)
        if patient is None:
            raise _Refused(
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
                raise _Refused(400, "invalid", f"read: unknown parameter {k!r}")
            _fhir_format(v)
        for p in self._patients:
            if p.id == rid:
                return StandinResponse(200, self._resource(p))
        raise _Refused(404, "not-found", "no Patient with this id", violation=False)

    def _capabilities(self) -> dict[str, Any]:
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "software": {"name": "eai identity stand-in (not a real identity server)"},
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": "Patient",
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": [
                                {"name": n, "type": t}
                                for n, t in (
                                    ("_id", "token"),
                                    ("active", "token"),
                                    ("family", "string"),
                                    ("given", "string"),
                                    ("identifier", "token"),
                                    ("birthdate", "date"),
                                    ("gender", "token"),
                                    ("birthplace", "token"),
                                )
                            ],
                            "operation": [
                                {
                                    "name": "ihe-pix",
                                    "definition": "https://profiles.ihe.net/ITI/PIXm/"
                                    "OperationDefinition/IHE.PIXm.pix",
                                }
                            ],
                        }
                    ],
                }
            ],
        }

    def _resource(self, p: _Patient) -> dict[str, Any]:
        """The record as an FR Core Patient (the identifier ``type`` slices are left out:
        the INS is recognised by its OID)."""
        r = p.record
        given = [str(g) for g in r.get("given") or ()]
        official: dict[str, Any] = {"use": "official", "family": str(r.get("birth_name", ""))}
        if given:
            official["given"] = given
            official["extension"] = [
                {"url": BIRTH_LIST_GIVEN_NAME_EXT, "valueString": " ".join(given)}
            ]
        names = [official]
        if r.get("used_name"):
            names.append({"use": "usual", "family": str(r["used_name"])})
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": p.id,
            "identifier": [{"system": s, "value": v} for s, v in p.identifiers],
            "active": r.get("active", True) is not False,
            "name": names,
        }
        if r.get("gender"):
            resource["gender"] = str(r["gender"])
        if r.get("birth_date"):
            resource["birthDate"] = str(r["birth_date"])
        if r.get("birth_place"):
            coding = {"system": _COMMUNE_SYSTEM, "code": str(r["birth_place"])}
            resource["extension"] = [
                {
                    "url": BIRTH_PLACE_EXT,
                    "valueAddress": {"extension": [{"url": INSEE_CODE_EXT, "valueCoding": coding}]},
                }
            ]
        if r.get("replaced_by"):
            resource["link"] = [
                {"other": {"reference": f"Patient/{r['replaced_by']}"}, "type": "replaced-by"}
            ]
        return resource


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


# --- the HTTP server -----------------------------------------------------------------------


@dataclass
class StandinServer:
    """Serves a :class:`StandinService` on ``host:port`` (port 0: chosen by the OS)."""

    service: StandinService
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    idle_timeout: float = 30.0
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the stand-in is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The FHIR base URL to configure as ``identity.server.url``."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.bound_port}{self.service.base}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, ssl=self.ssl_context, reuse_address=True
        )
        log.info("identity stand-in listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> StandinServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            while True:
                got = await self._request(conn, reader)
                if got is None:
                    return
                request, body = got
                if self.service.delay:
                    await asyncio.sleep(self.service.delay)
                headers = {
                    bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
                    for k, v in request.headers
                }
                if len(body) > _MAX_BODY:
                    answer = StandinResponse(413, _outcome("too-costly", "body too large"))
                else:
                    answer = self.service.handle(
                        request.method.decode("ascii", "replace"),
                        request.target.decode("ascii", "replace"),
                        headers,
                        body,
                    )
                await self._answer(conn, writer, answer)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    bad = StandinResponse(400, _outcome("invalid", "malformed HTTP request"))
                    await self._answer(conn, writer, bad, close=True)
        except (ConnectionError, ssl.SSLError, TimeoutError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def _request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        parts: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.idle_timeout):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size <= _MAX_BODY + 1:
                        parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    return request, b"".join(parts)
                else:  # ConnectionClosed
                    return None

    async def _answer(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        answer: StandinResponse,
        *,
        close: bool = False,
    ) -> None:
        body = answer.encode()
        headers = [
            ("content-type", FHIR_JSON),
            ("content-length", str(len(body))),
            *answer.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        response = h11.Response(
            status_code=answer.status, headers=headers, reason=HTTPStatus(answer.status).phrase
        )
        data = conn.send(response) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        async with asyncio.timeout(10):
            await writer.drain()
