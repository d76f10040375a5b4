"""The VIHF signed by signxml is verified by another implementation: Debian's xmlsec1
(libxmlsec1/OpenSSL), trusting only the seal's CA; a changed byte fails there too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from lxml import etree

from connectors.dmp._vihf import SigningIdentity, VihfSettings, build_vihf
from eai.xds import Code, InstanceId, Person
from tests._pki import make_seal

AUTHOR = Person(
    InstanceId("1.2.250.1.71.4.2.1", "801234534765"),
    "CAMPARINI",
    "Marcel",
    specialty=Code("G15_10/SM03", "1.2.250.1.213.1.1.4.5"),
)
SETTINGS = VihfSettings("1120459876", "SA25^1.2.250.1.71.4.2.4", "eai", "1.0", "HOMOL-TEST")
XMLSEC1 = shutil.which("xmlsec1") or "xmlsec1 (missing: run scripts/install-test-peers.sh)"


def xmlsec1_verify(document: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--trusted-pem",
            str(ca),
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def signed(tmp_path: Path, *, secret: bool) -> tuple[bytes, Path]:
    cert, key, ca = make_seal()
    ca_path = tmp_path / "seal-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    assertion = build_vihf(
        AUTHOR,
        "279035121518989",
        "1.2.250.1.213.1.4.10",
        secret,
        SETTINGS,
        SigningIdentity(key, cert),
    )
    return etree.tostring(assertion), ca_path


def test_xmlsec1_verifies_the_vihf(tmp_path: Path) -> None:
    for secret in (False, True):
        raw, ca = signed(tmp_path, secret=secret)
        document = tmp_path / "vihf.xml"
        document.write_bytes(raw)
        result = xmlsec1_verify(document, ca)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stderr.splitlines()


def test_xmlsec1_refuses_a_changed_vihf(tmp_path: Path) -> None:
    raw, ca = signed(tmp_path, secret=False)
    document = tmp_path / "vihf.xml"
    document.write_bytes(
        raw.replace(b"<saml2:AttributeValue>urn:dmp<", b"<saml2:AttributeValue>urn:dmq<")
    )
    result = xmlsec1_verify(document, ca)
    assert result.returncode != 0
    assert "FAIL" in result.stderr


def test_xmlsec1_refuses_a_vihf_from_another_ca(tmp_path: Path) -> None:
    raw, _ = signed(tmp_path, secret=False)
    _, _, other_ca = make_seal("another seal")
    other = tmp_path / "other-ca.pem"
    other.write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    document = tmp_path / "vihf.xml"
    document.write_bytes(raw)
    assert xmlsec1_verify(document, other).returncode != 0
