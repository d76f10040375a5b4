"""A throw-away PKI for TLS tests: a CA, server and client certificates, a rogue CA.

Touches: files (writes PEM certificates and keys into the directory given).

Made with ``cryptography`` at test time (EC P-256, valid one day): ``ca`` signs
the server certificate (``localhost`` and 127.0.0.1 in its subjectAltName) and
the client one; ``rogue_*`` is a client certificate from another CA, and
``rogue_server_*`` a server certificate (right names) from that other CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki", "make_seal"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path
    rogue_server_cert: Path  # a server certificate (right names) from another CA
    rogue_server_key: Path


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
    key_path.chmod(0o600)
    return cert_path, key_path


def make_pki(directory: Path) -> Pki:
    """Writes ``ca.crt``, ``server.*``, ``client.*``, ``rogue.*``, ``rogue-server.*``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _issue("eai test CA", _name("x"), None, ca=True)
    ca_path, _ = _write(directory, "ca", ca_cert, ca_key)
    server_cert, server_key = _issue("localhost", ca_cert.subject, ca_key, server=True)
    client_cert, client_key = _issue("gam.chu-x", ca_cert.subject, ca_key)
    rogue_ca, rogue_ca_key = _issue("rogue CA", _name("x"), None, ca=True)
    rogue_cert, rogue_key = _issue("rogue", rogue_ca.subject, rogue_ca_key)
    rogue_server, rogue_server_key = _issue(
        "localhost", rogue_ca.subject, rogue_ca_key, server=True
    )
    s_cert, s_key = _write(directory, "server", server_cert, server_key)
    c_cert, c_key = _write(directory, "client", client_cert, client_key)
    r_cert, r_key = _write(directory, "rogue", rogue_cert, rogue_key)
    rs_cert, rs_key = _write(directory, "rogue-server", rogue_server, rogue_server_key)
    return Pki(ca_path, s_cert, s_key, c_cert, c_key, r_cert, r_key, rs_cert, rs_key)


def make_seal(
    subject: str = "eai DMP seal",
) -> tuple[x509.Certificate, rsa.RSAPrivateKey, x509.Certificate]:
    """In memory: an RSA-2048 seal certificate (XML signatures: the DMP VIHF is RSA-SHA256)
    with an O/OU/C subject like a structure's, its key, and the CA certificate that issued it."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name("eai test seal CA")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GRADeS test"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "499700367909006"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key, ca
