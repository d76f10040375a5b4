"""OAuth2 bearer access tokens (JWT, RFC 9068) checked against an issuer's published keys (JWKS).

Touches: network (fetches ``jwks_url`` at start and when a token names a key
not seen yet, at most once a minute) or files (reads ``jwks_file`` at start).

A sender gets a token from the region's authorisation server with the client
credentials grant and sends it as ``Authorization: Bearer <jwt>``. The token
is accepted when (RFC 7515, RFC 7519, RFC 9068):

- its header names an asymmetric algorithm, RS256, PS256 or ES256 (``none``
  and the HMAC family are refused: a public key must never serve as an HMAC
  secret), and a ``kid`` of the JWKS whose key type fits the algorithm;
- the signature verifies (``cryptography``);
- ``iss`` is ``issuer``; ``aud`` is or holds ``audience``; ``exp`` is in the
  future and ``nbf`` / ``iat`` not in the future (``leeway`` each way);
- ``scope`` holds ``required_scope`` when set; the client (``client_id``,
  else ``azp``, else ``sub``) is in ``allowed_clients`` when set.

The client id is recorded as the sender (``oauth2 <client>``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any, Self

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pydantic import Field, model_validator

from eai.config import Duration, Model

__all__ = ["Jwks", "OAuth2Config", "TokenError", "parse_jwks", "verify_token"]

log = logging.getLogger(__name__)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
_ALGORITHMS = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
_MAX_TOKEN = 8192
_MAX_JWKS = 256 * 1024
_REFRESH_EVERY = 60.0  # seconds between two fetches of jwks_url triggered by unknown keys


class OAuth2Config(Model):
    """Where the issuer's keys are, and what a token must say to be accepted."""

    issuer: str = Field(
        min_length=1,
        description="the iss claim tokens must carry, exactly",
        examples=["https://auth.region.example/realms/esante"],
    )
    audience: str = Field(
        min_length=1,
        description="a value the aud claim must be or hold (this intake)",
        examples=["eai-cda-intake"],
    )
    jwks_url: str | None = Field(
        default=None,
        pattern=r"^https://|^http://(127\.[0-9.]+|localhost|\[::1\])[:/]",
        description="the issuer's JWKS (https; plain http only on loopback); fetched at start "
        "and again, at most once a minute, when a token names a key not seen yet",
        examples=["https://auth.region.example/realms/esante/protocol/openid-connect/certs"],
    )
    jwks_file: Path | None = Field(
        default=None,
        description="the issuer's JWKS as a local JSON file, read at start (instead of jwks_url)",
    )
    jwks_ca: Path | None = Field(
        default=None, description="PEM CA bundle to verify jwks_url's server; default: system"
    )
    required_scope: str | None = Field(
        default=None,
        pattern=r"^[!#-\[\]-~]+$",
        description="a scope the token's scope claim must hold",
        examples=["cda.write"],
    )
    allowed_clients: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="client ids accepted (client_id, else azp, else sub); unset: any client "
        "the issuer gave a token for this audience",
        examples=[["lis-lab-x"]],
    )
    leeway: Duration = Field(
        default=30.0, le=300, description="clock skew allowed on exp, nbf and iat"
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("oauth2 needs exactly one of jwks_url, jwks_file")
        return self


class TokenError(Exception):
    """A token refused; ``unknown_key``: its kid is not in the keys known now."""

    def __init__(self, reason: str, *, unknown_key: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_key = unknown_key


def _b64(part: str | bytes) -> bytes:
    text = part.encode("ascii") if isinstance(part, str) else part
    if b"=" in text:
        raise ValueError("padded base64url")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _int(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("not a base64url string")
    return int.from_bytes(_b64(value), "big")


def parse_jwks(data: bytes) -> dict[str, PublicKey]:
    """``{"keys": [...]}`` -> kid -> public key (RSA, EC P-256; signing keys with a kid only)."""
    if len(data) > _MAX_JWKS:
        raise ValueError(f"JWKS larger than {_MAX_JWKS} bytes")
    document = json.loads(data)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('not a JWKS: expected {"keys": [...]}')
    keys: dict[str, PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            if entry.get("kty") == "RSA":
                keys[kid] = rsa.RSAPublicNumbers(_int(entry["e"]), _int(entry["n"])).public_key()
            elif entry.get("kty") == "EC" and entry.get("crv") == "P-256":
                numbers = ec.EllipticCurvePublicNumbers(
                    _int(entry["x"]), _int(entry["y"]), ec.SECP256R1()
                )
                keys[kid] = numbers.public_key()
        except (KeyError, ValueError, binascii.Error) as exc:
            log.warning("JWKS key %r skipped: %s", kid[:64], exc)
    return keys


def verify_token(
    token: bytes, keys: dict[str, PublicKey], config: OAuth2Config, now: float | None = None
) -> str:
    """The client id of a valid ``token``; :class:`TokenError` saying why not."""
    if len(token) > _MAX_TOKEN or token.count(b".") != 2:
        raise TokenError("not a JWT")
    head_b64, claims_b64, sig_b64 = token.split(b".")
    try:
        header = json.loads(_b64(head_b64))
        claims = json.loads(_b64(claims_b64))
        signature = _b64(sig_b64)
    except (ValueError, binascii.Error):
        raise TokenError("not a JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("not a JWT")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in _ALGORITHMS:
        raise TokenError(f"algorithm {str(alg)[:16]!r} not accepted")
    if header.get("crit") is not None:
        raise TokenError("critical header parameters not supported")
    if not isinstance(kid, str) or kid not in keys:
        raise TokenError("signed with a key the issuer does not publish", unknown_key=True)
    _verify_signature(keys[kid], str(alg), head_b64 + b"." + claims_b64, signature)
    return _check_claims(claims, config, time.time() if now is None else now)


def _verify_signature(key: PublicKey, alg: str, signed: bytes, signature: bytes) -> None:
    try:
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                raise TokenError("bad signature")
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        elif alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256" and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            key.verify(signature, signed, pss, hashes.SHA256())
        else:
            raise TokenError(f"algorithm {alg} does not fit the key's type")
    except InvalidSignature:
        raise TokenError("bad signature") from None


def _check_claims(claims: dict[str, Any], config: OAuth2Config, now: float) -> str:
    leeway = config.leeway
    if claims.get("iss") != config.issuer:
        raise TokenError("issued by another issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if config.audience not in audiences:
        raise TokenError("meant for another audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError("no expiry (exp)")
    if now > exp + leeway:
        raise TokenError("expired")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or now + leeway < value):
            raise TokenError(f"not valid yet ({name})")
    if config.required_scope is not None:
        scope = claims.get("scope")
        if not isinstance(scope, str) or config.required_scope not in scope.split():
            raise TokenError(f"scope {config.required_scope} missing")
    client = next(
        (claims[n] for n in ("client_id", "azp", "sub") if isinstance(claims.get(n), str)), ""
    )
    if not client:
        raise TokenError("no client id (client_id, azp, sub)")
    if config.allowed_clients is not None and client not in config.allowed_clients:
        raise TokenError("client not in allowed_clients")
    return str(client)


class Jwks:
    """The issuer's keys as known now; :meth:`load` at start, :meth:`refresh` on an unknown kid."""

    def __init__(self, config: OAuth2Config) -> None:
        self.config = config
        self.keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None

    async def load(self) -> None:
        """Reads the file or fetches the URL; ValueError/OSError/httpx errors when it cannot."""
        cfg = self.config
        if cfg.jwks_file is not None:
            self.keys = parse_jwks(cfg.jwks_file.read_bytes())
        else:
            self.keys = await self._fetch()
        if not self.keys:
            raise ValueError("the JWKS holds no usable signing key (RSA or EC P-256 with a kid)")

    async def refresh(self) -> bool:
        """Fetches ``jwks_url`` again unless done less than a minute ago; True if it was."""
        now = time.monotonic()
        if self.config.jwks_url is None or (
            self._fetched_at is not None and now - self._fetched_at < _REFRESH_EVERY
        ):
            return False
        try:
            keys = await self._fetch()
        except (OSError, ValueError, httpx.HTTPError) as exc:
            log.warning("JWKS refresh from %s failed: %s", self.config.jwks_url, exc)
            return False
        if keys:
            self.keys = keys
        return True

    async def _fetch(self) -> dict[str, PublicKey]:
        cfg = self.config
        assert cfg.jwks_url is not None
        self._fetched_at = time.monotonic()
        verify: ssl.SSLContext | bool = True
        if cfg.jwks_ca is not None:
            verify = ssl.create_default_context(cafile=str(cfg.jwks_ca))
        async with httpx.AsyncClient(verify=verify, timeout=10.0, follow_redirects=False) as client:
            async with client.stream("GET", cfg.jwks_url) as response:
                response.raise_for_status()
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_JWKS:
                        raise ValueError(f"JWKS larger than {_MAX_JWKS} bytes")
        return parse_jwks(bytes(body))
