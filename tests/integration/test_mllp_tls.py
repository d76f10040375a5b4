"""MLLP over TLS with client-certificate verification; certificates made at test time."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connectors.mllp import MllpDestination, MllpDestinationConfig, send_messages
from eai.config import TlsServerConfig
from eai.errors import TransientDeliveryError
from eai.messages import OutboxItem
from tests.integration._mllp_support import FakeJournal, message, msa, run, running_listener

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name if issuer_key is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())
    return cert, key


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue("eai test CA", _name("x"), None, ca=True)
    ca_path, _ = _write(directory, "ca", ca_cert, ca_key)
    server_cert, server_key = _issue("localhost", ca_cert.subject, ca_key, server=True)
    client_cert, client_key = _issue("gam.chu-x", ca_cert.subject, ca_key)
    rogue_ca, rogue_ca_key = _issue("rogue CA", _name("x"), None, ca=True)
    rogue_cert, rogue_key = _issue("rogue", rogue_ca.subject, rogue_ca_key)
    s_cert, s_key = _write(directory, "server", server_cert, server_key)
    c_cert, c_key = _write(directory, "client", client_cert, client_key)
    r_cert, r_key = _write(directory, "rogue", rogue_cert, rogue_key)
    return Pki(ca_path, s_cert, s_key, c_cert, c_key, r_cert, r_key)


def _client_context(pki: Pki, *, with_cert: bool = True, rogue: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if rogue:
        ctx.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    elif with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def _tls(pki: Pki, *, require: bool = True) -> TlsServerConfig:
    return TlsServerConfig(
        cert=pki.server_cert,
        key=pki.server_key,
        client_ca=pki.ca,
        require_client_cert=require,
    )


def test_client_with_certificate_accepted(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            answers = await send_messages(
                "127.0.0.1", listener.port, [message("TLS-1")], tls=_client_context(pki)
            )
        assert [(a.code, a.control_id) for a in answers] == [("AA", "TLS-1")]
        assert journal.received[0].control_id == "TLS-1"

    run(scenario())


@pytest.mark.parametrize("rogue", [False, True], ids=["no_cert", "cert_from_other_ca"])
def test_client_without_valid_certificate_refused(pki: Pki, rogue: bool) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            ctx = _client_context(pki, with_cert=False, rogue=rogue)
            with pytest.raises(TransientDeliveryError):
                await send_messages(
                    "127.0.0.1", listener.port, [message("TLS-2")], tls=ctx, timeout=5
                )
            # The listener still serves good clients.
            answers = await send_messages(
                "127.0.0.1", listener.port, [message("TLS-3")], tls=_client_context(pki)
            )
        assert answers[0].code == "AA"
        assert [e.control_id for e in journal.entries] == ["TLS-3"]

    run(scenario())


def test_optional_client_certificate(pki: Pki) -> None:
    async def scenario() -> None:
        async with running_listener(FakeJournal(), tls=_tls(pki, require=False)) as listener:
            ctx = _client_context(pki, with_cert=False)
            answers = await send_messages("127.0.0.1", listener.port, [message("OPT-1")], tls=ctx)
        assert answers[0].code == "AA"

    run(scenario())


def test_plain_tcp_client_gets_nothing_from_a_tls_listener(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            with pytest.raises(TransientDeliveryError):
                await send_messages("127.0.0.1", listener.port, [message("PLAIN-1")], timeout=3)
        assert journal.entries == []

    run(scenario())


def test_destination_over_mutual_tls(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            config = MllpDestinationConfig.model_validate(
                {
                    "name": "peer",
                    "host": "127.0.0.1",
                    "port": listener.port,
                    "tls": {
                        "ca": str(pki.ca),
                        "cert": str(pki.client_cert),
                        "key": str(pki.client_key),
                    },
                }
            )
            dest = MllpDestination(config)
            try:
                result = await dest.send(
                    OutboxItem(1, 1, "peer", message("DTLS-1"), "DTLS-1", "p1")
                )
            finally:
                await dest.close()
        assert msa(result.response) == ("AA", "DTLS-1")

    run(scenario())
