"""Signed JWT access tokens and JWKS for the OAuth2 tests: RSA and EC keys made at import.

Touches: nothing.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://auth.region.example/realms/esante"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int, size: int | None = None) -> str:
    size = size or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(size, "big"))


def jwk_rsa(kid: str = "r1", key: rsa.RSAPrivateKey = RSA_KEY) -> dict[str, Any]:
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "n": _uint(n.n), "e": _uint(n.e)}


def jwk_ec(kid: str = "e1") -> dict[str, Any]:
    n = EC_KEY.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "x": _uint(n.x, 32), "y": _uint(n.y, 32)}


def jwks(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": ["eai-cda", "other"],
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "client_id": "lis-lab-x",
        "scope": "openid cda.write",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    body: dict[str, Any], alg: str = "RS256", kid: str = "r1", key: Any = RSA_KEY, **head: Any
) -> bytes:
    header = {"alg": alg, "typ": "at+jwt", "kid": kid, **head}
    signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}".encode()
    if alg == "RS256":
        sig = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        sig = key.sign(
            signed, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
        )
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "HS256":
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(signed)
        sig = mac.finalize()
    else:
        sig = b""
    return signed + b"." + b64url(sig).encode()
