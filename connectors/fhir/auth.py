"""OAuth2 client credentials for the FHIR destination: get, cache and renew an access token.

Touches: network (the token endpoint, through the destination's httpx client), files
(the private_key_jwt key, read when built).

One token per destination, shared by its concurrent sends; renewed ``early_refresh``
seconds before it expires, or when the FHIR server refuses it (401: :meth:`invalidate`,
then one more try). Client authentication: ``client_secret_post`` or
``private_key_jwt`` (RFC 7523, RS256 or ES256 assertion signed with ``cryptography``).
A refusal by the token endpoint is transient: the deliveries wait, retried, for the
credentials to be put right instead of being dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from connectors.fhir.config import OAuth2ClientConfig
from eai.errors import TransientDeliveryError

__all__ = ["TokenSource", "client_assertion"]

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TokenSource:
    """The destination's access token (``await token()``), fetched at most once at a time."""

    def __init__(
        self,
        config: OAuth2ClientConfig,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._key = _load_key(config) if config.private_key is not None else None
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0
        """Tokens obtained so far (a test reads it)."""

    async def token(self) -> str:
        if self._token and self._clock() < self._expires:
            return self._token
        async with self._lock:
            if not (self._token and self._clock() < self._expires):
                await self._fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        """The server refused ``token``: the next :meth:`token` fetches another."""
        if token == self._token:
            self._token = ""

    async def _fetch(self) -> None:
        cfg = self._config
        form = {"grant_type": "client_credentials", "client_id": cfg.client_id}
        if cfg.scope:
            form["scope"] = cfg.scope
        if self._key is not None:
            form["client_assertion_type"] = _ASSERTION_TYPE
            form["client_assertion"] = client_assertion(
                self._key, cfg.client_id, cfg.audience or str(cfg.token_url), cfg.key_id
            )
        elif cfg.client_secret is not None:
            form["client_secret"] = cfg.client_secret.get_secret_value()
        url = str(cfg.token_url)
        started = self._clock()
        try:
            answer = await self._client.post(url, data=form, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"token endpoint {url}: {type(exc).__name__}") from exc
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise TransientDeliveryError(f"token endpoint {url} answered {answer.status_code}")
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code != 200 or not isinstance(data, dict):
            # A refused client is the engine's configuration, not the message: the
            # deliveries wait (retried) until the credentials are put right.
            error = data.get("error", "") if isinstance(data, dict) else ""
            raise TransientDeliveryError(
                f"token endpoint {url} refused the client ({answer.status_code} {error})".strip()
            )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransientDeliveryError(f"token endpoint {url} gave no access_token")
        lifetime = data.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 300.0
        self._token = token
        self._expires = started + max(0.0, seconds - cfg.early_refresh)
        self.fetched += 1


def client_assertion(key: _SigningKey, client_id: str, audience: str, kid: str | None) -> str:
    """A signed JWT authenticating ``client_id`` (RFC 7523 section 2.2), valid 60 s."""
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    header: dict[str, str] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    data = signing_input.encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64(signature)}"


def _load_key(config: OAuth2ClientConfig) -> _SigningKey:
    assert config.private_key is not None
    key = serialization.load_pem_private_key(config.private_key.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{config.private_key}: an RSA or EC private key is needed")
    return key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
