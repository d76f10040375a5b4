"""The VIHF's enveloped signature, made by hand with lxml and cryptography, is byte for byte
what signxml's XMLSigner made of the same assertion (the signer the VIHF used before, and
the one test_dmp_vihf.py verifies with); xmlsec1 verifies it in
tests/integration/test_dmp_vihf_xmlsec.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from functools import cache
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from connectors.dmp._vihf import SigningIdentity, VihfSettings, build_vihf
from connectors.dmp._xmldsig import DS
from eai.xds import Code, InstanceId, Person
from tests._pki import make_seal

AUTHOR = Person(
    InstanceId("1.2.250.1.71.4.2.1", "801234534765"),
    "CAMPARINI",
    "Marcel",
    specialty=Code("G15_10/SM03", "1.2.250.1.213.1.1.4.5"),
)
SETTINGS = VihfSettings("1120459876", "SA25^1.2.250.1.71.4.2.4", "eai", "1.0", "HOMOL-TEST")


@cache
def seal() -> tuple[x509.Certificate, rsa.RSAPrivateKey, x509.Certificate]:
    return make_seal()


def by_signxml(signed: etree._Element, signer: SigningIdentity) -> bytes:
    """``signed`` with its signature made again by signxml, as the VIHF was made before."""
    unsigned = copy.deepcopy(signed)
    signature = unsigned.find(f"{{{DS}}}Signature")
    assert signature is not None
    unsigned.remove(signature)
    etree.SubElement(unsigned, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    placeholder = unsigned[-1]
    unsigned.insert(1, placeholder)
    resigned = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(
        unsigned,
        key=signer.key,
        cert=[signer.certificate],
        reference_uri=f"#{unsigned.get('ID')}",
        id_attribute="ID",
    )
    return bytes(etree.tostring(resigned))


@pytest.mark.parametrize("secret", [False, True])
def test_the_signature_is_the_one_signxml_makes(secret: bool) -> None:
    cert, key, _ = seal()
    signer = SigningIdentity(key, cert)
    assertion = build_vihf(
        AUTHOR,
        "279035121518989",
        "1.2.250.1.213.1.4.10",
        secret,
        SETTINGS,
        signer,
        now=datetime(2026, 12, 7, 4, 0, 0, 5000, tzinfo=UTC),
        new_uuid=lambda: UUID(int=42),
    )
    ours = etree.tostring(assertion)
    assert b"<ds:SignatureValue>" in ours
    assert ours == by_signxml(assertion, signer)


def test_the_certificate_is_written_once_per_identity() -> None:
    cert, key, _ = seal()
    signer = SigningIdentity(key, cert)
    assert signer == SigningIdentity(key, cert)
    assert signer.pem_body.endswith("\n") and "BEGIN" not in signer.pem_body
    assert "O=GRADeS test" in repr(signer)
