"""The FHIR destination: POST a mapping's Bundle as a transaction to a FHIR R4 server.

Touches: network (the FHIR server and the OAuth2 token endpoint, over httpx), files
(TLS certificates and the private_key_jwt key, read when built).

Registered as destination type ``fhir``. One httpx client per destination: a pool of
``connections`` connections, HTTP/2 over TLS when the server offers it by ALPN (httpx's
``h2``, a dependency), HTTP/1.1 otherwise and over plain ``http://`` (no h2c), TLS >= 1.2
from :func:`eai.net.client_context`. The Bundle is rebuilt by
:mod:`connectors.fhir.transaction`, the answer judged by :mod:`connectors.fhir.outcome`;
a 401 with OAuth2 renews the token and tries once more.
"""

from __future__ import annotations

import json
import logging
import ssl
from datetime import UTC, datetime

import httpx

from connectors.fhir.auth import TokenSource
from connectors.fhir.config import FhirDestinationConfig
from connectors.fhir.outcome import verdict
from connectors.fhir.transaction import BundleError, Prepared, prepare
from eai import compact_json
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import MEDIA_FHIR_JSON, DeliveryResult, OutboxItem
from eai.net import client_context

__all__ = ["FhirDestination"]

log = logging.getLogger(__name__)

_FHIR_JSON = "application/fhir+json"


class FhirDestination:
    """Delivers FHIR Bundles (``application/fhir+json`` outbox items) to one server."""

    def __init__(self, config: FhirDestinationConfig) -> None:
        self.config = config
        self._url = str(config.base_url).rstrip("/")
        # Built now so that a bad certificate path fails at start, not at the first send.
        verify: ssl.SSLContext | bool = True
        if config.tls is not None:
            verify = client_context(config.tls)
        elif config.base_url.scheme == "https":
            verify = ssl.create_default_context()
            verify.minimum_version = ssl.TLSVersion.TLSv1_2
        self._client = httpx.AsyncClient(
            verify=verify,
            http2=True,  # offered by ALPN over TLS; HTTP/1.1 when the server declines
            timeout=httpx.Timeout(
                config.response_timeout,
                connect=config.connect_timeout,
                pool=config.connect_timeout + config.response_timeout,
            ),
            limits=httpx.Limits(
                max_connections=config.connections, max_keepalive_connections=config.connections
            ),
            follow_redirects=False,
            trust_env=False,
        )
        # tls.server_hostname: the name checked in the server's certificate (and sent as SNI)
        hostname = config.tls.server_hostname if config.tls is not None else None
        self._extensions = {"sni_hostname": hostname} if hostname else {}
        self.tokens = (
            TokenSource(config.oauth2, self._client) if config.oauth2 is not None else None
        )

    async def start(self) -> None:
        """Nothing ahead: connections open at the first send (the server may be down)."""

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, item: OutboxItem) -> DeliveryResult:
        """POST the item's Bundle; see :func:`connectors.fhir.outcome.verdict`."""
        if item.media_type != MEDIA_FHIR_JSON:
            raise PermanentDeliveryError(
                f"destination {self.config.name} sends FHIR, not {item.media_type} "
                "(its route needs map:)"
            )
        try:
            prepared = prepare(
                json.loads(item.payload.decode("utf-8")),
                item.facts,
                self.config.mode,
                self.config.patient_match,
            )
        except (UnicodeDecodeError, ValueError) as exc:  # BundleError is a ValueError
            reason = str(exc) if isinstance(exc, BundleError) else "the payload is not JSON"
            raise PermanentDeliveryError(f"destination {self.config.name}: {reason}") from exc
        body = compact_json.dumps(prepared.bundle)
        return await self._post(prepared, body, item.control_id)

    async def _post(self, prepared: Prepared, body: bytes, control_id: str) -> DeliveryResult:
        # X-Correlation-Id: the message's control id (MSH-10), for the server's logs.
        headers = {
            "content-type": _FHIR_JSON,
            "accept": _FHIR_JSON,
            "x-correlation-id": control_id,
            # ids and statuses are all we read of the answer: no copy of each resource
            "prefer": "return=minimal",
        }
        for last in (False, True):
            token = ""
            if self.tokens is not None:
                token = await self.tokens.token()
                headers["authorization"] = f"Bearer {token}"
            answer = await self._exchange(body, headers)
            if answer.status_code == 401 and self.tokens is not None and not last:
                log.info("destination %s: access token refused, renewing it", self.config.name)
                self.tokens.invalidate(token)
                continue
            return verdict(
                answer.status_code,
                answer.headers,
                answer.content,
                prepared.labels,
                datetime.now(UTC),
                self._url,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        request = self._client.build_request(
            "POST", self._url, content=body, headers=headers, extensions=self._extensions
        )
        try:
            answer = await self._client.send(request, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in answer.aiter_bytes():
                    size += len(chunk)
                    if size > self.config.max_response_bytes:
                        limit = self.config.max_response_bytes
                        raise TransientDeliveryError(f"{self._url}: answer over {limit} bytes")
                    chunks.append(chunk)
            finally:
                await answer.aclose()
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"{self._url}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"{self._url}: {type(exc).__name__}: {exc}") from exc
        except ssl.SSLError as exc:
            # TLS 1.3: a refused client certificate surfaces on the first read, unwrapped
            raise TransientDeliveryError(f"{self._url}: TLS refused: {exc}") from exc
        return httpx.Response(answer.status_code, headers=answer.headers, content=b"".join(chunks))
