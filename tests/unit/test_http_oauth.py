"""OAuth2 access tokens for the http intake: JWKS parsing, signature, algorithm and claim checks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from connectors._http_oauth import OAuth2Config, TokenError, parse_jwks, verify_token
from tests._jwt import EC_KEY, ISSUER, RSA_KEY, b64url, claims, jwk_ec, jwk_rsa, jwks, sign

CONFIG = OAuth2Config(issuer=ISSUER, audience="eai-cda", jwks_file="jwks.json")  # type: ignore[arg-type]
KEYS = parse_jwks(jwks(jwk_rsa(), jwk_ec()))


@pytest.mark.parametrize(
    ("alg", "kid", "key"),
    [("RS256", "r1", RSA_KEY), ("PS256", "r1", RSA_KEY), ("ES256", "e1", EC_KEY)],
)
def test_valid_tokens_name_their_client(alg: str, kid: str, key: Any) -> None:
    assert verify_token(sign(claims(), alg, kid, key), KEYS, CONFIG) == "lis-lab-x"


def test_client_from_azp_then_sub() -> None:
    token = sign(claims(client_id=None, azp="from-azp", sub="from-sub"))
    assert verify_token(token, KEYS, CONFIG) == "from-azp"
    assert verify_token(sign(claims(client_id=None, sub="from-sub")), KEYS, CONFIG) == "from-sub"


def _refused(token: bytes, config: OAuth2Config = CONFIG) -> TokenError:
    with pytest.raises(TokenError) as info:
        verify_token(token, KEYS, config)
    return info.value


def test_forged_and_confused_algorithms_refused() -> None:
    public_pem = jwk_rsa()["n"].encode()  # HS256 keyed with public material: the classic
    assert "not accepted" in _refused(sign(claims(), "HS256", key=public_pem)).reason
    assert "not accepted" in _refused(sign(claims(), "none")).reason
    assert "not accepted" in _refused(sign(claims(), "RS512")).reason
    # an RSA-signed token naming the EC key, and the other way round
    assert "does not fit" in _refused(sign(claims(), "RS256", "e1")).reason
    assert "does not fit" in _refused(sign(claims(), "ES256", "r1", EC_KEY)).reason
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _refused(sign(claims(), key=other)).reason == "bad signature"
    assert "critical" in _refused(sign(claims(), crit=["exp"])).reason
    listed = sign(claims()).split(b".")
    listed[0] = b64url(json.dumps({"alg": ["RS256"], "kid": "r1"}).encode()).encode()
    assert "not accepted" in _refused(b".".join(listed)).reason


def test_tampered_claims_refused() -> None:
    head, _, sig = sign(claims()).split(b".")
    forged = b64url(json.dumps(claims(client_id="admin")).encode()).encode()
    assert _refused(head + b"." + forged + b"." + sig).reason == "bad signature"


def test_unknown_key_id_says_so() -> None:
    error = _refused(sign(claims(), kid="rotated"))
    assert error.unknown_key
    assert not _refused(sign(claims(), "none")).unknown_key


@dataclass(frozen=True)
class Ago:
    """A claim time ``seconds`` before the test runs (negative: after)."""

    seconds: int


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"aud": "someone-else"}, "another audience"),
        ({"aud": None}, "another audience"),
        ({"exp": Ago(31)}, "expired"),
        ({"exp": None}, "no expiry"),
        ({"exp": "never"}, "no expiry"),
        ({"nbf": Ago(-120)}, "not valid yet"),
        ({"iat": Ago(-120)}, "not valid yet"),
        ({"client_id": None, "sub": None}, "no client id"),
    ],
)
def test_claims_checked(over: dict[str, Any], reason: str) -> None:
    # Times are taken when the test runs, not when it is collected (a slow run
    # would otherwise make "in 120 s" a time already past).
    now = int(time.time())
    over = {k: now - v.seconds if isinstance(v, Ago) else v for k, v in over.items()}
    assert reason in _refused(sign(claims(**over))).reason


def test_leeway_allows_small_skew() -> None:
    assert verify_token(sign(claims(exp=int(time.time()) - 10)), KEYS, CONFIG)
    assert verify_token(sign(claims(nbf=int(time.time()) + 10)), KEYS, CONFIG)


def test_scope_and_allowed_clients() -> None:
    strict = CONFIG.model_copy(update={"required_scope": "cda.write", "allowed_clients": ("a",)})
    assert "allowed_clients" in _refused(sign(claims()), strict).reason
    assert verify_token(sign(claims(client_id="a")), KEYS, strict) == "a"
    assert "scope" in _refused(sign(claims(client_id="a", scope="openid")), strict).reason
    assert "scope" in _refused(sign(claims(client_id="a", scope="cda.writes")), strict).reason


@pytest.mark.parametrize(
    "token", [b"", b"a.b", b"a.b.c.d", b"!!.??.**", b"e30.e30.", b"W10.W10.", b"x" * 9000]
)
def test_garbage_is_not_a_jwt(token: bytes) -> None:
    assert _refused(token).reason in ("not a JWT", "algorithm 'None' not accepted")


def test_jwks_parsing_keeps_signing_keys_with_a_kid() -> None:
    enc = {**jwk_rsa("enc"), "use": "enc"}
    no_kid = {k: v for k, v in jwk_rsa().items() if k != "kid"}
    broken = {**jwk_rsa("broken"), "n": 5}
    oct_key = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
    keys = parse_jwks(jwks(jwk_rsa("ok"), enc, no_kid, broken, oct_key, jwk_ec("ec")))
    assert sorted(keys) == ["ec", "ok"]
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_jwks(b'{"k": []}')
    with pytest.raises(ValueError, match="larger"):
        parse_jwks(b" " * 300_000)


def test_config_needs_one_key_source() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        OAuth2Config(issuer=ISSUER, audience="a")
    with pytest.raises(ValidationError, match="exactly one"):
        OAuth2Config(issuer=ISSUER, audience="a", jwks_file="k", jwks_url="https://x/k")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        OAuth2Config(issuer=ISSUER, audience="a", jwks_url="http://idp.example/k")
    assert OAuth2Config(issuer=ISSUER, audience="a", jwks_url="http://127.0.0.1:8/k").jwks_url
