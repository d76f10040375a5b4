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

This module is the client; the patients read from FR Core are in
:mod:`identity._server_patient`, the errors in :mod:`identity._pdqm_errors`, the
answer cache in :mod:`identity._ttl_cache`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from eai.errors import ConfigError, ConfigIssue
from eai.net import TlsClientConfig
from identity._pdqm_errors import (
    IdentityServerError,
    IdentityServerUnavailable,
    issue_codes,
    refused,
)
from identity._pdqm_errors import retry_after as _retry_after
from identity._server_patient import (
    BIRTH_LIST_GIVEN_NAME_EXT,
    BIRTH_PLACE_EXT,
    INS_OIDS,
    INSEE_CODE_EXT,
    Identifier,
    ServerPatient,
    TraitsQuery,
    oid_system,
    patient_from_fhir,
)
from identity._ttl_cache import TtlCache
from identity.config import IdentityServerConfig

__all__ = [
    "BIRTH_LIST_GIVEN_NAME_EXT",
    "BIRTH_PLACE_EXT",
    "INSEE_CODE_EXT",
    "INS_OIDS",
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


@dataclass(slots=True)
class ClientStats:
    """Counters for tests, benchmarks and health reports."""

    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    failures: int = 0


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
        self._cache = TtlCache(config.cache_ttl, config.cache_size, clock)
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
                raise refused(kind, status, body)
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
            if status == 404 and issue_codes(body) in ((), ("not-found",)):
                return None  # sourceIdentifier Patient Identifier not found (3.83.4.2.2.2)
            if status != 200:
                raise refused("pixm", status, body)
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
