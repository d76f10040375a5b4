"""Who may post to the http listener: bearer API keys, client certificate subjects, networks.

Real sockets on 127.0.0.1, requests made with ``http.client``; certificates
from the throw-away PKI of ``tests._pki`` plus one more client of the same CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from connectors._http_auth import hash_key
from connectors.http_in import HttpListener
from eai.errors import ConfigError
from tests import _jwt as oauth_unit
from tests._http_client import TSH, http_config, post, raw, serving
from tests._listeners import FakeJournal, run
from tests._pki import Pki, _write, make_pki

pytestmark = pytest.mark.integration

DOC = TSH.read_bytes()
KEY_X = "kx-0d6f2d1be8a54c3c9a2b7e1f60c4d8a93b5e7f1a2c4d6e8f"
KEY_Y = "ky-71c3a9e05b2d4f6a8c0e1f3b5d7a9c2e4f6a8b0c1d3e5f7a"
KEYS = [{"name": "lab-x", "sha256": hash_key(KEY_X)}, {"name": "lab-y", "sha256": hash_key(KEY_Y)}]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- bearer API keys ------------------------------------------------------------------


def test_api_key_names_the_sender_in_the_journal() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, api_keys=KEYS, validate_schema=False) as listener:
            x = await post(listener.port, DOC, headers=_bearer(KEY_X))
            other = DOC.replace(b"<title>", b"<title>y", 1)
            y = await post(listener.port, other, headers=_bearer(KEY_Y))
        assert (x.status, y.status) == (202, 202)
        assert [e.peer.split(" ", 1)[1] for e in journal.entries] == ["(key lab-x)", "(key lab-y)"]
        assert journal.entries[0].peer.startswith("127.0.0.1:")

    run(scenario())


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        (_bearer("not-a-key"), "invalid_token"),
        (_bearer(KEY_X[:-1]), "invalid_token"),
        ({"Authorization": f"Basic {KEY_X}"}, "invalid_token"),
        ({"Authorization": f"Bearer {KEY_X} extra"}, "invalid_token"),
        ({"Authorization": f"Bearer {hash_key(KEY_X)}"}, "invalid_token"),  # the hash is no key
    ],
    ids=["missing", "wrong", "truncated", "basic", "two_words", "the_hash"],
)
def test_missing_or_wrong_key_answered_401_nothing_journaled(
    headers: dict[str, str], error: str | None
) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, api_keys=KEYS) as listener:
            reply = await post(listener.port, DOC, headers=headers)
            assert (await post(listener.port, DOC, headers=_bearer(KEY_X))).status == 202
        assert reply.status == 401
        challenge = reply.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="eai"')
        assert (f'error="{error}"' in challenge) == (error is not None)
        assert reply.headers.get("connection") == "close"
        assert KEY_X not in json.dumps(reply.body)
        assert len(journal.entries) == 1

    run(scenario())


def test_key_checked_before_the_path_and_the_body() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, api_keys=KEYS) as listener:
            other_path = await post(listener.port, DOC, path="/elsewhere")
            big = (
                b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                b"Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
            )
            response = await raw(listener.port, big)
        assert other_path.status == 401
        assert b" 100 " not in response and response.startswith(b"HTTP/1.1 401 ")
        assert journal.calls == 0

    run(scenario())


def test_two_authorization_headers_refused() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, api_keys=KEYS) as listener:
            request = (
                b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                + f"Authorization: Bearer {KEY_X}\r\nAuthorization: Bearer {KEY_Y}\r\n".encode()
                + f"Content-Length: {len(DOC)}\r\n\r\n".encode()
                + DOC
            )
            response = await raw(listener.port, request)
        assert response.startswith(b"HTTP/1.1 401 ")
        assert journal.entries == []

    run(scenario())


def test_api_keys_config_is_checked() -> None:
    digest = hash_key(KEY_X)
    assert (
        http_config(api_keys=[{"name": "a", "sha256": digest.upper()}]).api_keys[0].sha256 == digest
    )
    for bad, match in [
        ([{"name": "a", "sha256": "abc"}], "sha256"),
        ([{"name": "a", "sha256": digest, "key": KEY_X}], "key"),
        ([{"name": "a", "sha256": digest}, {"name": "a", "sha256": hash_key(KEY_Y)}], "twice"),
        ([{"name": "a", "sha256": digest}, {"name": "b", "sha256": digest}], "twice"),
    ]:
        with pytest.raises(ValidationError, match=match):
            http_config(api_keys=bad)
    assert digest not in repr(http_config(api_keys=[{"name": "a", "sha256": digest}]))


# --- mutual TLS with allowed subjects -----------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("http-auth-pki"))


@pytest.fixture(scope="module")
def other_client(pki: Pki) -> tuple[Path, Path]:
    """A second client of the same CA: CN=lis.lab-y, O=Labo Y, C=FR."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(
        pki.ca.with_suffix(".key").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Labo Y"),
            x509.NameAttribute(NameOID.COMMON_NAME, "lis.lab-y"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _write(pki.ca.parent, "lab-y", cert, key)


def _tls(pki: Pki, require: bool = False) -> dict[str, Any]:
    return {
        "cert": str(pki.server_cert),
        "key": str(pki.server_key),
        "client_ca": str(pki.ca),
        "require_client_cert": require,
    }


def _client(pki: Pki, chain: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if chain is not None:
        ctx.load_cert_chain(*chain)
    return ctx


def test_allowed_subjects_by_common_name_and_by_dn(
    pki: Pki, other_client: tuple[Path, Path]
) -> None:
    gam = (pki.client_cert, pki.client_key)

    async def scenario() -> None:
        journal = FakeJournal()
        fields = {"tls": _tls(pki), "validate_schema": False}
        async with serving(journal, allowed_subjects=["gam.chu-x"], **fields) as listener:
            ok = await post(listener.port, DOC, context=_client(pki, gam))
            no = await post(listener.port, DOC, context=_client(pki, other_client))
            none = await post(listener.port, DOC, context=_client(pki, None))
        dn = ["CN=lis.lab-y,O=Labo Y,C=FR"]
        async with serving(journal, allowed_subjects=dn, **fields) as listener:
            other = DOC.replace(b"<title>", b"<title>y", 1)  # not a resend of the first
            by_dn = await post(listener.port, other, context=_client(pki, other_client))
            cn_only = await post(listener.port, DOC, context=_client(pki, gam))
        assert (ok.status, no.status, none.status) == (202, 403, 403)
        assert (by_dn.status, cn_only.status) == (202, 403)
        assert "allowed_subjects" in no.body["error"]
        assert [e.peer.split(" ", 1)[1] for e in journal.entries] == [
            "(cert CN=gam.chu-x)",
            "(cert CN=lis.lab-y,O=Labo Y,C=FR)",
        ]

    run(scenario())


def test_certificate_or_key_either_is_enough(pki: Pki, other_client: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(
            journal, tls=_tls(pki), allowed_subjects=["gam.chu-x"], api_keys=KEYS[:1]
        ) as listener:
            cert = await post(
                listener.port, DOC, context=_client(pki, (pki.client_cert, pki.client_key))
            )
            key = await post(
                listener.port, DOC, context=_client(pki, other_client), headers=_bearer(KEY_X)
            )
            neither = await post(listener.port, DOC, context=_client(pki, other_client))
        assert (cert.status, key.status, neither.status) == (202, 202, 401)
        assert journal.entries[0].peer.endswith("(cert CN=gam.chu-x)")

    run(scenario())


def test_required_client_certificate_recorded_as_sender(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, tls=_tls(pki, require=True)) as listener:
            reply = await post(
                listener.port, DOC, context=_client(pki, (pki.client_cert, pki.client_key))
            )
        assert reply.status == 202
        assert journal.entries[0].peer.endswith("(cert CN=gam.chu-x)")

    run(scenario())


def test_allowed_subjects_need_a_client_ca(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="allowed_subjects needs tls with client_ca"):
        http_config(allowed_subjects=["gam.chu-x"])
    tls = {"cert": str(pki.server_cert), "key": str(pki.server_key)}
    with pytest.raises(ValidationError, match="allowed_subjects needs tls with client_ca"):
        http_config(allowed_subjects=["gam.chu-x"], tls=tls)
    with pytest.raises(ValidationError):
        http_config(allowed_subjects=[], tls=_tls(pki))


# --- source networks ------------------------------------------------------------------


def test_connection_from_outside_allowed_networks_closed_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, allowed_networks=["10.9.9.0/24", "192.0.2.7"]) as listener:
            with caplog.at_level(logging.WARNING, logger="connectors.http_in"):
                request = (
                    b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                    + f"Content-Length: {len(DOC)}\r\n\r\n".encode()
                    + DOC
                )
                try:
                    response = await raw(listener.port, request)
                except ConnectionError:
                    response = b""
        assert response == b""
        assert journal.calls == 0
        refused = [r for r in caplog.records if "allowed_networks" in r.getMessage()]
        assert refused and refused[0].levelno == logging.WARNING
        assert "127.0.0.1" in refused[0].getMessage()

    run(scenario())


def test_outside_networks_closed_before_the_tls_handshake(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with a valid client certificate: no handshake, so no TLS work for outsiders;
    the second refusal of the same address within a minute is logged at DEBUG only."""

    async def scenario() -> None:
        async with serving(FakeJournal(), tls=_tls(pki), allowed_networks=["10.9.9.0/24"]) as lis:
            context = _client(pki, (pki.client_cert, pki.client_key))
            with caplog.at_level(logging.DEBUG, logger="connectors.http_in"):
                for _ in range(2):
                    with pytest.raises((ssl.SSLError, ConnectionError)):
                        await asyncio.open_connection(
                            "127.0.0.1", lis.port, ssl=context, server_hostname="localhost"
                        )

    run(scenario())
    refused = [r for r in caplog.records if "allowed_networks" in r.getMessage()]
    assert [r.levelno for r in refused] == [logging.WARNING, logging.DEBUG]
    assert not any("handshake" in r.getMessage() for r in caplog.records)


def test_connection_from_an_allowed_network_served() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, allowed_networks=["10.9.9.0/24", "127.0.0.0/8"]) as listener:
            reply = await post(listener.port, DOC)
        assert reply.status == 202

    run(scenario())


def test_allowed_networks_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="CIDR"):
        http_config(allowed_networks=["lab.example"])
    assert http_config(allowed_networks=["10.1.2.0/24", "::1"]).allowed_networks


# --- through the real engine: the journey says who sent it --------------------------

ENGINE_ROUTES = """
engine:
  data_dir: {data_dir}
listeners:
  - name: cda-http
    type: http
    bind: 127.0.0.1:0
    api_keys:
      - {{name: lab-x, sha256: {digest}}}
"""


def test_journey_records_the_key_name(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from eai.cli import cli
    from tests._http_client import request
    from tests.engine_harness import EngineThread

    config = tmp_path / "routes.yaml"
    config.write_text(ENGINE_ROUTES.format(data_dir=tmp_path / "var", digest=hash_key(KEY_X)))
    with EngineThread(config) as eng:
        port = eng.port("cda-http")
        refused = request(port, DOC)
        accepted = request(port, DOC, headers=_bearer(KEY_X))
    assert (refused.status, accepted.status) == (401, 202)
    res = CliRunner().invoke(
        cli,
        ["messages", "show", "-c", str(config), "--json", str(accepted.body["message_id"])],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    received = next(e for e in shown["events"] if e["kind"] == "received")
    assert "(key lab-x)" in received["detail"]
    assert KEY_X not in res.output


# --- OAuth2 access tokens (client credentials) ----------------------------------------


def _oauth(**fields: Any) -> dict[str, Any]:
    return {"issuer": oauth_unit.ISSUER, "audience": "eai-cda", **fields}


def test_oauth2_token_names_the_client(tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_bytes(oauth_unit.jwks(oauth_unit.jwk_rsa(), oauth_unit.jwk_ec()))
    good = oauth_unit.sign(oauth_unit.claims()).decode()
    expired = oauth_unit.sign(oauth_unit.claims(exp=int(time.time()) - 600)).decode()

    async def scenario() -> None:
        journal = FakeJournal()
        oauth = _oauth(jwks_file=str(keys), required_scope="cda.write")
        async with serving(journal, oauth2=oauth, api_keys=KEYS[:1]) as listener:
            accepted = await post(listener.port, DOC, headers=_bearer(good))
            late = await post(listener.port, DOC, headers=_bearer(expired))
            by_key = await post(
                listener.port, DOC.replace(b"<title>", b"<title>k", 1), headers=_bearer(KEY_X)
            )
            missing = await post(listener.port, DOC)
        assert (accepted.status, late.status, missing.status) == (202, 401, 401)
        assert late.body["error"] == "invalid token: expired"
        assert 'error="invalid_token"' in late.headers["www-authenticate"]
        assert journal.entries[0].peer.endswith("(oauth2 lis-lab-x)")
        assert by_key.status in (202, 422) and journal.entries[-1].peer.endswith("(key lab-x)")

    run(scenario())


class _JwksServer:
    """Serves a JWKS that the test can change (the issuer rotating its keys)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_oauth2_keys_fetched_and_refreshed_on_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors import _http_oauth

    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rotated = oauth_unit.sign(oauth_unit.claims(), kid="r2", key=new_key).decode()
    unknown = oauth_unit.sign(oauth_unit.claims(), kid="never", key=new_key).decode()
    with _JwksServer(oauth_unit.jwks(oauth_unit.jwk_rsa())) as issuer:

        async def scenario() -> None:
            journal = FakeJournal()
            async with serving(
                journal, oauth2=_oauth(jwks_url=issuer.url), validate_schema=False
            ) as listener:
                first = await post(
                    listener.port,
                    DOC,
                    headers=_bearer(oauth_unit.sign(oauth_unit.claims()).decode()),
                )
                issuer.body = oauth_unit.jwks(oauth_unit.jwk_rsa("r2", new_key))
                too_soon = await post(listener.port, DOC, headers=_bearer(rotated))
                monkeypatch.setattr(_http_oauth, "_REFRESH_EVERY", 0.0)
                after = await post(
                    listener.port, DOC.replace(b"<title>", b"<title>r", 1), headers=_bearer(rotated)
                )
                never = await post(listener.port, DOC, headers=_bearer(unknown))
            assert (first.status, too_soon.status, after.status, never.status) == (
                202,
                401,
                202,
                401,
            )
            assert issuer.hits == 3  # start, the rotation, the unknown kid (rate limit off)

        run(scenario())


def test_oauth2_keys_unreachable_fail_the_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        for oauth in (
            _oauth(jwks_url="http://127.0.0.1:9/certs"),
            _oauth(jwks_file=str(tmp_path / "none.json")),
        ):
            listener = HttpListener(http_config(oauth2=oauth), FakeJournal())
            with pytest.raises(ConfigError, match="oauth2 keys"):
                await listener.start()

    run(scenario())
