"""Asks the regional identity server about a patient: IHE PDQm searches and PIXm cross-references.

Touches: network (HTTPS to the identity server), files (TLS certificates, when the client
is made).

* PDQm [ITI-78] ``GET [base]/Patient?identifier=urn:oid:<oid>|<INS>`` or by traits
  (``family``, ``given``, ``birthdate``, ``gender``, and the INSEE birth place under the
  parameter name the server gives it, ``identity.server.birth_place_param``); the answer
  is a ``searchset`` Bundle of FR Core Patients (IHE ITI TF-2 3.78.4.2).
* PIXm [ITI-83] ``GET [base]/Patient/$ihe-pix?sourceIdentifier=<system>|<value>
  [&targetSystem=<system>]``; the answer is a ``Parameters`` with one ``targetIdentifier``
  per identifier known for the patient, 404 with an ``OperationOutcome`` when the source
  identifier is unknown (ITI TF-2 3.83.4.2.2.2).

Answers are cached in memory, keyed by the query, for ``cache_ttl`` seconds and at most
``cache_size`` entries (least recently used dropped first); errors are never cached, and
concurrent identical queries share one request. Errors: :class:`IdentityServerUnavailable`
(no connection, timeout, 408/429/5xx: hold the flow and retry) and
:class:`IdentityServerError` (another 4xx or an answer that is not FHIR: retrying the
same request will not help). After an outage the client answers "unavailable" at once for
``outage_backoff`` seconds instead of waiting for a timeout per message.

Logs carry the kind of query, the status and the time, never identifiers or traits;
httpx's own request log line is stripped of its query string (which holds them).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from eai.errors import ConfigError, ConfigIssue, EaiError
from eai.net import TlsClientConfig
from identity.config import IdentityServerConfig
from identity.ins import INS_NIA_OID, INS_NIR_DEMO_OID, INS_NIR_OID, INS_NIR_TEST_OID

__all__ = [
    "BIRTH_LIST_GIVEN_NAME_EXT",
    "BIRTH_PLACE_EXT",
    "INSEE_CODE_EXT",
    "ClientStats",
    "Identifier",
    "IdentityServerClient",
    "IdentityServerError",
    "IdentityServerUnavailable",
    "ServerPatient",
    "TraitsQuery",
    "oid_system",
    "patient_from_fhir",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

FHIR_JSON = "application/fhir+json"
INS_OIDS = (INS_NIR_OID, INS_NIA_OID, INS_NIR_TEST_OID, INS_NIR_DEMO_OID)
BIRTH_PLACE_EXT = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_EXT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
BIRTH_LIST_GIVEN_NAME_EXT = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)


class IdentityServerUnavailable(EaiError):
    """The identity server did not answer (connection, timeout, 408/429/5xx): hold and retry.

    ``retry_after``: seconds before asking again is worth it (``Retry-After`` or the
    configured ``outage_backoff``).
    """

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class IdentityServerError(EaiError):
    """The identity server refused the request (4xx) or answered something that is not FHIR.

    A bad request is our bug or bad data: retrying it unchanged will not help. ``str()``
    names the status and the OperationOutcome issue codes only; ``diagnostics`` keeps the
    server's text, which may quote the request (patient data): never log it.
    """

    def __init__(self, reason: str, status: int = 0, diagnostics: str = "") -> None:
        self.reason = reason
        self.status = status
        self.diagnostics = diagnostics
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Identifier:
    """A FHIR Identifier: ``system`` (``urn:oid:...`` or a URI) and ``value``."""

    system: str
    value: str

    def __repr__(self) -> str:
        return f"Identifier(system={self.system!r}, value=<{len(self.value)} chars>)"

    @property
    def token(self) -> str:
        """``system|value`` with FHIR search escaping (``\\``, ``|``, ``,``, ``$``)."""
        return f"{_escape(self.system)}|{_escape(self.value)}"


@dataclass(frozen=True, slots=True)
class ServerPatient:
    """A Patient of the identity server, reduced to what reconciliation compares.

    ``birth_date`` is a FHIR date (``YYYY-MM-DD``), ``gender`` a FHIR administrative
    gender, ``birth_place`` an INSEE code; ``regional_id`` is the identifier whose system
    is ``regional_id_system`` (empty if the server gave none).
    """

    resource_id: str
    regional_id: str
    ins: str = ""
    ins_oid: str = ""
    birth_name: str = ""
    first_given_name: str = ""
    birth_given_names: tuple[str, ...] = ()
    birth_date: str = ""
    gender: str = ""
    birth_place: str = ""
    active: bool = True
    replaced_by: str = ""
    identifiers: tuple[Identifier, ...] = ()

    def __repr__(self) -> str:  # never print traits or identifiers
        return f"ServerPatient(<{len(self.identifiers)} identifiers>, active={self.active})"


@dataclass(frozen=True, slots=True)
class TraitsQuery:
    """A PDQm search by traits: FHIR forms (``birthdate`` YYYY-MM-DD, ``gender`` male...)."""

    family: str
    given: str = ""
    birthdate: str = ""
    gender: str = ""
    birth_place: str = ""

    def __repr__(self) -> str:
        return "TraitsQuery(<traits>)"


@dataclass(slots=True)
class ClientStats:
    """Counters for tests, benchmarks and health reports."""

    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    failures: int = 0


def oid_system(oid: str) -> str:
    """``1.2.250...`` -> ``urn:oid:1.2.250...`` (a URI or ``urn:`` system is kept)."""
    oid = oid.strip()
    return oid if oid.startswith(("urn:", "http://", "https://")) else f"urn:oid:{oid}"


def _escape(value: str) -> str:
    # FHIR search: \ , | $ in a token value are escaped with a backslash (search.html#escaping)
    for ch in ("\\", ",", "|", "$"):
        value = value.replace(ch, "\\" + ch)
    return value


class _TtlCache:
    """Answers by query, each kept ``ttl`` seconds, at most ``size`` (LRU)."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> tuple[bool, Any]:
        entry = self._data.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock() >= expires:
            del self._data[key]
            return False, None
        self._data.move_to_end(key)
        return True, value

    def put(self, key: Hashable, value: Any) -> None:
        if self._ttl <= 0 or self._size <= 0:
            return
        self._data[key] = (self._clock() + self._ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


class _RedactQuery(logging.Filter):
    """Strips the query (identifiers, traits) from httpx's ``HTTP Request: GET <url>`` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                str(a.copy_with(query=None)) + ("?<redacted>" if a.query else "")
                if isinstance(a, httpx.URL)
                else a
                for a in record.args
            )
        return True


def _guard_httpx_log() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


def _ssl_context(tls: TlsClientConfig | None) -> ssl.SSLContext:
    """The server is verified against ``tls.ca`` (else the system's CAs); mutual TLS when
    ``tls.cert``/``tls.key`` are set."""
    where = "identity.server.tls"
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca) if tls and tls.ca else None)
        if tls is not None and tls.cert is not None and tls.key is not None:
            ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [ConfigIssue(where, 1, 1, f"cannot load the TLS files: {type(exc).__name__}: {exc}")]
        ) from exc
    return ctx


class IdentityServerClient:
    """One identity server, its connection pool and its answer cache.

    ``transport`` replaces the network in unit tests (``httpx.MockTransport``); ``clock``
    (monotonic seconds) drives the cache lifetime and the outage back-off.
    """

    def __init__(
        self,
        config: IdentityServerConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stats = ClientStats()
        self._clock = clock
        self._cache = _TtlCache(config.cache_ttl, config.cache_size, clock)
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self._down_until = 0.0
        self.outage_since: float | None = None
        """Clock time of the first failure of the current outage; None when answering."""
        self._extensions: dict[str, Any] = {}
        if config.tls is not None and config.tls.server_hostname:
            self._extensions["sni_hostname"] = config.tls.server_hostname
        _guard_httpx_log()
        verify: ssl.SSLContext | bool = True
        if transport is None and config.url.startswith("https://"):
            verify = _ssl_context(config.tls)
        self._http = httpx.AsyncClient(
            base_url=config.url.rstrip("/") + "/",
            transport=transport,
            verify=verify,
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            headers={"Accept": FHIR_JSON},
            follow_redirects=False,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"IdentityServerClient({self.config.url!r})"

    async def __aenter__(self) -> IdentityServerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self._http.aclose()

    @property
    def available(self) -> bool:
        """False from a failed request until the next answer (for alerts and health)."""
        return self.outage_since is None

    def clear_cache(self) -> None:
        self._cache.clear()

    # --- PDQm [ITI-78] ----------------------------------------------------------------

    async def search_by_ins(self, ins: str, oid: str = "") -> tuple[ServerPatient, ...]:
        """Patients whose identifier is this INS (``oid`` empty: any of the INS OIDs)."""
        value = ins.strip().upper()
        systems = (oid_system(oid),) if oid.strip() else tuple(oid_system(o) for o in INS_OIDS)
        token = ",".join(Identifier(s, value).token for s in systems)
        return await self._search("pdqm-ins", (("identifier", token),))

    async def search_by_identifier(self, system: str, value: str) -> tuple[ServerPatient, ...]:
        """Patients having this identifier (e.g. a facility's local id)."""
        return await self._search("pdqm-id", (("identifier", Identifier(system, value).token),))

    async def search_by_traits(self, query: TraitsQuery) -> tuple[ServerPatient, ...]:
        """Patients matching the traits (PDQm: at least ``family`` with ``birthdate`` or
        ``gender``, ITI TF-2 3.78.4.1.2.1.1)."""
        if not query.family.strip() or not (query.birthdate or query.gender):
            raise IdentityServerError(
                "a search by traits needs the birth name and the birth date or the sex"
            )
        params: list[tuple[str, str]] = [("family", query.family.strip())]
        if query.given.strip():
            params.append(("given", query.given.strip()))
        if query.birthdate:
            params.append(("birthdate", query.birthdate))
        if query.gender:
            params.append(("gender", query.gender))
        if query.birth_place.strip() and self.config.birth_place_param:
            params.append((self.config.birth_place_param, query.birth_place.strip()))
        return await self._search("pdqm-traits", tuple(params))

    async def _search(
        self, kind: str, params: tuple[tuple[str, str], ...]
    ) -> tuple[ServerPatient, ...]:
        async def fetch() -> tuple[ServerPatient, ...]:
            status, body = await self._get(kind, "Patient", params)
            if status != 200:
                raise _refused(kind, status, body)
            return self._patients(kind, body)

        return await self._cached((kind, params), fetch)

    def _patients(self, kind: str, body: Mapping[str, Any]) -> tuple[ServerPatient, ...]:
        if body.get("resourceType") != "Bundle":
            raise IdentityServerError(f"identity server: {kind} answer is not a FHIR Bundle")
        found = []
        for entry in body.get("entry") or ():
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
                continue
            search = entry.get("search")
            if isinstance(search, Mapping) and search.get("mode") not in (None, "match"):
                continue  # included resources (e.g. the replaced-by Patient) are not matches
            found.append(patient_from_fhir(resource, self.config.regional_id_system))
        return tuple(found)

    # --- PIXm [ITI-83] ----------------------------------------------------------------

    async def cross_references(
        self, source: Identifier, target_systems: Sequence[str] = ()
    ) -> tuple[Identifier, ...] | None:
        """The identifiers the server links to ``source``; None when it does not know it."""
        params = (("sourceIdentifier", source.token),) + tuple(
            ("targetSystem", s) for s in target_systems
        )

        async def fetch() -> tuple[Identifier, ...] | None:
            status, body = await self._get("pixm", "Patient/$ihe-pix", params)
            if status == 404 and _issue_codes(body) in ((), ("not-found",)):
                return None  # sourceIdentifier Patient Identifier not found (3.83.4.2.2.2)
            if status != 200:
                raise _refused("pixm", status, body)
            if body.get("resourceType") != "Parameters":
                raise IdentityServerError("identity server: pixm answer is not a Parameters")
            out = []
            for p in body.get("parameter") or ():
                if not isinstance(p, Mapping) or p.get("name") != "targetIdentifier":
                    continue
                ident = p.get("valueIdentifier")
                if isinstance(ident, Mapping) and ident.get("system") and ident.get("value"):
                    out.append(Identifier(str(ident["system"]), str(ident["value"])))
            return tuple(out)

        return await self._cached(("pixm", params), fetch)

    # --- plumbing ---------------------------------------------------------------------

    async def _cached(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        hit, value = self._cache.get(key)
        if hit:
            self.stats.cache_hits += 1
            result: T = value
            return result
        task = self._inflight.get(key)
        if task is None:
            self.stats.cache_misses += 1
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        shared: T = await asyncio.shield(task)
        return shared

    def _settle(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled():
            return
        if task.exception() is None:  # also marks a failure as seen when nobody waits
            self._cache.put(key, task.result())

    async def _get(
        self, kind: str, path: str, params: tuple[tuple[str, str], ...]
    ) -> tuple[int, dict[str, Any]]:
        now = self._clock()
        if now < self._down_until:
            raise IdentityServerUnavailable(
                f"identity server unavailable (outage for {now - (self.outage_since or now):.0f}"
                " s, not asked again yet)",
                self._down_until - now,
            )
        self.stats.requests += 1
        try:
            response = await self._http.get(path, params=params, extensions=self._extensions)
        except httpx.TimeoutException as exc:
            raise self._outage(kind, f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise self._outage(kind, f"no connection ({type(exc).__name__})") from exc
        status = response.status_code
        elapsed = (self._clock() - now) * 1000
        log.debug("identity server: %s answered %d in %.1f ms", kind, status, elapsed)
        if status >= 500 or status in (408, 429):
            raise self._outage(kind, f"answered {status}", _retry_after(response))
        self._answered()
        try:
            body = response.json() if response.content else {}
        except ValueError as exc:
            raise IdentityServerError(
                f"identity server: {kind} answered {status} with a body that is not JSON", status
            ) from exc
        if not isinstance(body, dict):
            raise IdentityServerError(f"identity server: {kind} answer is not a FHIR resource")
        return status, body

    def _outage(self, kind: str, what: str, retry_after: float = 0.0) -> IdentityServerUnavailable:
        now = self._clock()
        self.stats.failures += 1
        if self.outage_since is None:
            self.outage_since = now
            log.warning("identity server %s: %s %s; holding identity checks", self, kind, what)
        backoff = max(self.config.outage_backoff, retry_after)
        self._down_until = now + backoff
        return IdentityServerUnavailable(f"identity server unavailable: {kind} {what}", backoff)

    def _answered(self) -> None:
        if self.outage_since is not None:
            log.warning(
                "identity server %s: answering again after %.0f s",
                self,
                self._clock() - self.outage_since,
            )
        self.outage_since = None
        self._down_until = 0.0


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 0.0


def _issue_codes(body: Mapping[str, Any]) -> tuple[str, ...]:
    if body.get("resourceType") != "OperationOutcome":
        return ()
    return tuple(str(i.get("code", "")) for i in body.get("issue") or () if isinstance(i, Mapping))


def _refused(kind: str, status: int, body: Mapping[str, Any]) -> IdentityServerError:
    codes = ", ".join(c for c in _issue_codes(body) if c) or "no OperationOutcome"
    diagnostics = "; ".join(
        str(i.get("diagnostics", ""))
        for i in (body.get("issue") or ())
        if isinstance(i, Mapping) and i.get("diagnostics")
    )
    return IdentityServerError(
        f"identity server refused the {kind} request: {status} ({codes})", status, diagnostics
    )


# --- FR Core Patient -> ServerPatient -----------------------------------------------------


def _ext(items: Any, url: str) -> list[Mapping[str, Any]]:
    return [
        e for e in items or () if isinstance(e, Mapping) and str(e.get("url", "")).endswith(url)
    ]


def _birth_place(resource: Mapping[str, Any]) -> str:
    for ext in _ext(resource.get("extension"), "patient-birthPlace"):
        address = ext.get("valueAddress")
        if not isinstance(address, Mapping):
            continue
        for code in _ext(address.get("extension"), "fr-core-address-insee-code"):
            coding = code.get("valueCoding")
            if isinstance(coding, Mapping) and coding.get("code"):
                return str(coding["code"]).strip()
    return ""


def _official_name(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    names = [n for n in resource.get("name") or () if isinstance(n, Mapping)]
    for name in names:
        if name.get("use") == "official":  # FR Core: the birth name slice (use = official)
            return name
    return names[0] if names else {}


def patient_from_fhir(resource: Mapping[str, Any], regional_system: str) -> ServerPatient:
    """Reads an FR Core Patient: INS identifier (INS OIDs), official (birth) name with the
    birth given names extension, birthDate, gender, patient-birthPlace with its INSEE code."""
    identifiers = tuple(
        Identifier(str(i["system"]), str(i["value"]))
        for i in resource.get("identifier") or ()
        if isinstance(i, Mapping) and i.get("system") and i.get("value")
    )
    regional = next((i.value for i in identifiers if i.system == regional_system), "")
    ins = ins_oid = ""
    for ident in identifiers:
        oid = ident.system.removeprefix("urn:oid:")
        if oid in INS_OIDS:
            ins, ins_oid = ident.value, oid
            break
    name = _official_name(resource)
    given = tuple(str(g) for g in name.get("given") or ())
    listed: tuple[str, ...] = ()
    for ext in _ext(name.get("extension"), "birth-list-given-name"):
        listed += tuple(str(ext.get("valueString", "")).split())
    replaced_by = ""
    for link in resource.get("link") or ():
        if isinstance(link, Mapping) and link.get("type") == "replaced-by":
            other = link.get("other")
            if isinstance(other, Mapping):
                replaced_by = str(other.get("reference", ""))
    return ServerPatient(
        resource_id=str(resource.get("id", "")),
        regional_id=regional,
        ins=ins,
        ins_oid=ins_oid,
        birth_name=str(name.get("family", "")),
        first_given_name=given[0] if given else "",
        birth_given_names=listed or given,
        birth_date=str(resource.get("birthDate", "")),
        gender=str(resource.get("gender", "")),
        birth_place=_birth_place(resource),
        active=resource.get("active") is not False,
        replaced_by=replaced_by,
        identifiers=identifiers,
    )
