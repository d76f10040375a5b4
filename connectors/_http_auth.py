"""Who sent an HTTP request: its client certificate subject or its bearer API key.

Touches: nothing (reads the certificate bytes and header values it is given).

Two ways for a sender to prove who it is, either one enough:

- mutual TLS: a client certificate verified against ``tls.client_ca`` whose
  subject is in ``allowed_subjects``, written as the certificate's common name
  (``gam.chu-x``) or its whole distinguished name in RFC 4514 form, most
  specific first (``CN=gam.chu-x,O=CHU X,C=FR``); without ``allowed_subjects``
  every certificate the CA signed is accepted;
- an OAuth2 access token (:mod:`connectors._http_oauth`) as bearer;
- a bearer key (RFC 6750 ``Authorization: Bearer <key>``) whose SHA-256 is
  listed in ``api_keys`` with a name. Keys are random (``secrets.token_urlsafe(32)``,
  256 bits), so one unsalted SHA-256 is enough: there is nothing to guess by
  brute force, and the config holds no usable secret. Every listed digest is
  compared in constant time (``hmac.compare_digest``), none skipped.

The name that passed (``key lab-x``, ``cert CN=...``, ``oauth2 <client>``) is recorded with the
message as the sender. A request without a valid credential is answered 401
with ``WWW-Authenticate: Bearer`` (when keys or OAuth2 are configured) or 403 (a
certificate outside ``allowed_subjects`` and no keys to fall back on).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Self

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import Field, field_validator

from connectors._http_oauth import Jwks, TokenError, verify_token
from eai.config import Model

__all__ = [
    "ApiKey",
    "Authenticator",
    "CertSubject",
    "Refusal",
    "check_keys",
    "hash_key",
]

_KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def hash_key(key: str) -> str:
    """The ``sha256`` to write in ``api_keys`` for ``key`` (hex, lower case)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKey(Model):
    """One sender's bearer key, stored as its SHA-256 only."""

    name: str = Field(
        pattern=_KEY_NAME,
        description="who holds the key; recorded with each message it sends",
        examples=["lab-x"],
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the key, hex (printf %s KEY | sha256sum); the key itself "
        "is never written in the config",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, sha256='{self.sha256[:8]}...')"


def check_keys(keys: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
    """Names and digests are unique (a digest twice would make the sender ambiguous)."""
    for attr in ("name", "sha256"):
        seen: set[str] = set()
        for key in keys:
            value = getattr(key, attr)
            if value in seen:
                shown = value if attr == "name" else f"{value[:8]}..."
                raise ValueError(f"api_keys: {attr} {shown} appears twice")
            seen.add(value)
    return keys


@dataclass(frozen=True, slots=True)
class CertSubject:
    """The verified client certificate's subject: common name and RFC 4514 DN."""

    common_name: str
    dn: str

    @classmethod
    def from_der(cls, der: bytes) -> Self:
        subject = x509.load_der_x509_certificate(der).subject
        names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = names[0].value if names else ""
        return cls(
            cn if isinstance(cn, str) else cn.decode("utf-8", "replace"), subject.rfc4514_string()
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request without an accepted credential: the status and what to tell the client."""

    status: int
    reason: str
    challenge: bytes = b""  # the WWW-Authenticate value (401)
    unknown_key: bool = False  # an OAuth2 token signed by a key not known yet


class Authenticator:
    """Decides, per request, who sent it; built once per listener from its config."""

    def __init__(
        self,
        api_keys: tuple[ApiKey, ...] = (),
        allowed_subjects: tuple[str, ...] | None = None,
        *,
        certificates_verified: bool = False,
        jwks: Jwks | None = None,
    ) -> None:
        """``certificates_verified``: the TLS layer checks client certificates (client_ca);
        ``jwks``: OAuth2 access tokens are accepted, checked against these keys."""
        self._digests = tuple((bytes.fromhex(k.sha256), k.name) for k in api_keys)
        self._subjects = frozenset(allowed_subjects) if allowed_subjects is not None else None
        self._certs = certificates_verified
        self._jwks = jwks
        self.required = bool(api_keys) or allowed_subjects is not None or jwks is not None

    def sender(self, cert: CertSubject | None, authorization: list[bytes]) -> str | Refusal:
        """``"key <name>"``, ``"cert <dn>"`` or ``""`` (nothing required, nothing shown);
        a :class:`Refusal` when a credential is required and none holds.

        ``authorization`` holds the values of every ``Authorization`` header received.
        """
        if cert is not None and self._certs and self._cert_allowed(cert):
            return f"cert {cert.dn}"
        if not self.required:
            return ""
        if self._digests or self._jwks is not None:
            return self._bearer(authorization)
        return Refusal(403, "client certificate missing or its subject not in allowed_subjects")

    def _cert_allowed(self, cert: CertSubject) -> bool:
        if self._subjects is None:
            return True
        return cert.dn in self._subjects or (
            bool(cert.common_name) and cert.common_name in self._subjects
        )

    def _bearer(self, authorization: list[bytes]) -> str | Refusal:
        if not authorization:
            return Refusal(
                401,
                "authentication required: send Authorization: Bearer <key>",
                b'Bearer realm="eai"',
            )
        token = _bearer_token(authorization)
        invalid = Refusal(401, "invalid credentials", b'Bearer realm="eai", error="invalid_token"')
        if token is None:
            return invalid
        if self._jwks is not None and token.count(b".") == 2:
            try:
                return f"oauth2 {verify_token(token, self._jwks.keys, self._jwks.config)}"
            except TokenError as exc:
                return Refusal(
                    401, f"invalid token: {exc.reason}", invalid.challenge, exc.unknown_key
                )
        digest = hashlib.sha256(token).digest()
        found = ""
        for expected, name in self._digests:  # every entry compared: no timing hint
            if hmac.compare_digest(digest, expected):
                found = name
        return f"key {found}" if found else invalid


def _bearer_token(values: list[bytes]) -> bytes | None:
    """The token of the one ``Authorization: Bearer <token68>`` (None: absent, twice, other)."""
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token or b" " in token:
        return None
    return token
