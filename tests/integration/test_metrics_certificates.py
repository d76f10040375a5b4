"""eai_certificate_expiry_timestamp_seconds: every certificate routes.yaml names, re-read
when its file changes; an unreadable one is an error series, never a crash of the scrape."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eai.config import load_config_text
from eai.metrics.endpoint import CertificateGauges, certificate_fields
from tests._pki import make_pki


def _not_after(path: Path) -> float:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()


def _renewed(path: Path, days: int) -> None:
    """A self-signed certificate valid ``days`` from now, written over ``path``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _collect(gauges: CertificateGauges) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.name, tuple(s.labels.values())): s.value for f in gauges.collect() for s in f.samples
    }


def test_expiry_of_each_configured_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    server = tmp_path / "server.crt"
    shutil.copy(pki.server_cert, server)
    config = load_config_text(
        "listeners:\n"
        f"  - {{name: adt, type: mllp, bind: 127.0.0.1:0, tls: {{cert: {server}, "
        f"key: {pki.server_key}}}}}\n"
        "destinations:\n"
        f"  - {{name: dcc, type: mllp, host: 127.0.0.1, port: 9, tls: {{ca: {pki.ca}, "
        f"cert: {pki.client_cert}, key: {pki.client_key}}}}}\n",
        env={},
    )
    fields = certificate_fields(
        [("listener", c) for c in config.listeners]
        + [("destination", c) for c in config.destinations]
    )
    assert [(k, n, f) for k, n, f, _ in fields] == [
        ("listener", "adt", "tls.cert"),
        ("destination", "dcc", "tls.cert"),
    ]  # a CA bundle (tls.ca) is not this engine's certificate
    gauges = CertificateGauges(fields)
    got = _collect(gauges)
    expiry = "eai_certificate_expiry_timestamp_seconds"
    assert got[(expiry, ("listener", "adt", "tls.cert"))] == _not_after(pki.server_cert)
    assert got[(expiry, ("destination", "dcc", "tls.cert"))] == _not_after(pki.client_cert)
    assert got[("eai_certificate_errors", ("listener", "adt", "tls.cert"))] == 0

    # Renewed in place: the new file is read (its mtime changed).
    _renewed(server, 400)
    st = server.stat()
    os.utime(server, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    got = _collect(gauges)
    assert got[(expiry, ("listener", "adt", "tls.cert"))] == _not_after(server)
    assert _not_after(server) - _not_after(pki.server_cert) > 300 * 86400

    # Replaced by something that is not a certificate: an error, no expiry, no crash.
    server.write_text("not a certificate\n")
    got = _collect(gauges)
    assert (expiry, ("listener", "adt", "tls.cert")) not in got
    assert got[("eai_certificate_errors", ("listener", "adt", "tls.cert"))] == 1
    assert got[(expiry, ("destination", "dcc", "tls.cert"))] == _not_after(pki.client_cert)
