"""The VIHF: a SAML 2 assertion laid out as the ANS sample, with the attributes the DMP
reads, signed (exclusive C14N, RSA-SHA256, certificate in KeyInfo). xmlsec1 verifies it in
tests/integration/test_dmp_vihf_xmlsec.py; here signxml's verifier checks the shape."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from functools import cache
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import InvalidSignature, XMLVerifier

from connectors.dmp._vihf import SigningIdentity, VihfSettings, build_vihf, issuer_dn
from eai.errors import PermanentDeliveryError
from eai.xds import Code, InstanceId, Person
from tests._pki import make_seal

NS = {
    "saml2": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "hl7": "urn:hl7-org:v3",
}
AUTHOR = Person(
    InstanceId("1.2.250.1.71.4.2.1", "801234534765"),
    "CAMPARINI",
    "Marcel",
    specialty=Code("G15_10/SM03", "1.2.250.1.213.1.1.4.5"),
)
SETTINGS = VihfSettings(
    structure_id="1120459876",
    activity_sector="SA25^1.2.250.1.71.4.2.4",
    software_name="eai",
    software_version="1.0",
    homologation_id="HOMOL-TEST",
    software_id="eai-grades",
)
NOW = datetime(2026, 12, 6, 22, 0, 0, 123000, tzinfo=UTC)


@cache
def seal() -> tuple[x509.Certificate, rsa.RSAPrivateKey, x509.Certificate]:
    return make_seal()


def vihf(author: Person = AUTHOR, *, secret: bool = False, **settings: object) -> etree._Element:
    cert, key, _ = seal()
    options = dataclasses.replace(SETTINGS, **settings)  # type: ignore[arg-type]
    return build_vihf(
        author,
        "279035121518989",
        "1.2.250.1.213.1.4.10",
        secret,
        options,
        SigningIdentity(key, cert),
        now=NOW,
        new_uuid=lambda: UUID(int=7),
    )


def attributes(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for attribute in assertion.xpath("saml2:AttributeStatement/saml2:Attribute", namespaces=NS):
        found[attribute.get("Name")] = attribute.xpath("saml2:AttributeValue", namespaces=NS)
    return found


def text(values: list[etree._Element]) -> list[str]:
    return [v.text or "" for v in values]


def test_the_assertion_has_the_ans_layout_and_attributes() -> None:
    assertion = vihf()
    cert, _, _ = seal()
    assert assertion.tag == "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"
    assert assertion.get("Version") == "2.0"
    assert assertion.get("ID") == f"_{UUID(int=7)}"
    assert assertion.get("IssueInstant") == "2026-12-06T22:00:00.123Z"
    children = [etree.QName(c).localname for c in assertion]
    assert children == ["Issuer", "Signature", "Subject", "AuthnStatement", "AttributeStatement"]
    issuer = assertion.find("saml2:Issuer", NS)
    assert issuer is not None
    assert issuer.get("Format") == "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
    assert (
        issuer.text == issuer_dn(cert) == "CN=eai DMP seal, OU=499700367909006, O=GRADeS test, C=FR"
    )
    assert assertion.findtext("saml2:Subject/saml2:NameID", namespaces=NS) == "801234534765"
    found = attributes(assertion)
    assert text(found["VIHF_Version"]) == ["3.0"]
    assert text(found["Authentification_Mode"]) == ["INDIRECTE"]
    assert text(found["Identifiant_Structure"]) == ["1120459876"]
    assert text(found["Secteur_Activite"]) == ["SA25^1.2.250.1.71.4.2.4"]
    assert text(found["Ressource_URN"]) == ["urn:dmp"]
    assert text(found["urn:oasis:names:tc:xacml:2.0:resource:resource-id"]) == [
        "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    ]
    assert text(found["urn:oasis:names:tc:xspa:1.0:subject:subject-id"]) == ["Marcel CAMPARINI"]
    assert text(found["LPS_ID"]) == ["eai-grades"]
    assert text(found["LPS_Nom"]) == ["eai"]
    assert text(found["LPS_Version"]) == ["1.0"]
    assert text(found["LPS_ID_HOMOLOGATION_DMP"]) == ["HOMOL-TEST"]
    roles = [v[0] for v in found["urn:oasis:names:tc:xacml:2.0:subject:role"]]
    assert [(r.tag, r.get("code"), r.get("codeSystem")) for r in roles] == [
        ("{urn:hl7-org:v3}Role", "10", "1.2.250.1.71.1.2.7"),
        ("{urn:hl7-org:v3}Role", "SM03", "1.2.250.1.71.4.2.5"),
    ]
    assert all(r.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "CE" for r in roles)
    purpose = found["urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"][0][0]
    assert (purpose.tag, purpose.get("code"), purpose.get("codeSystem")) == (
        "{urn:hl7-org:v3}PurposeOfUse",
        "normal",
        "1.2.250.1.213.1.1.4.248",
    )
    assert "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code" not in found


def test_the_signature_is_exclusive_c14n_rsa_sha256_with_the_certificate() -> None:
    assertion = vihf()
    cert, _, _ = seal()
    signed_info = assertion.find("ds:Signature/ds:SignedInfo", NS)
    assert signed_info is not None
    algorithms = [e.get("Algorithm") for e in signed_info.iter() if e.get("Algorithm")]
    assert algorithms == [
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmlenc#sha256",
    ]
    reference = signed_info.find("ds:Reference", NS)
    assert reference is not None and reference.get("URI") == f"#{assertion.get('ID')}"
    assert assertion.findtext(
        "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS
    )
    XMLVerifier().verify(etree.tostring(assertion), x509_cert=cert, id_attribute="ID")


def test_a_changed_attribute_breaks_the_signature() -> None:
    cert, _, _ = seal()
    raw = etree.tostring(vihf()).replace(b"279035121518989^", b"279035121518990^")
    with pytest.raises(InvalidSignature):
        XMLVerifier().verify(raw, x509_cert=cert, id_attribute="ID")


def test_a_secret_connection_adds_the_confidentiality_attribute() -> None:
    found = attributes(vihf(secret=True))
    values = found["urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"]
    code = values[0][0]
    assert (code.tag, code.get("code")) == (
        "{urn:hl7-org:v3}ConfidentialityCode",
        "INVISIBLE_PATIENT",
    )


def test_an_author_without_a_profession_needs_a_default_role() -> None:
    author = Person(InstanceId("1.2.250.1.71.4.2.1", "801234534765"), "X", "Y")
    with pytest.raises(PermanentDeliveryError, match="subject:role"):
        vihf(author)
    role = Code("AUTOMATE", "1.2.250.1.213.1.1.4.6", "Automate")
    roles = attributes(vihf(author, default_role=role))["urn:oasis:names:tc:xacml:2.0:subject:role"]
    assert [v[0].get("code") for v in roles] == ["AUTOMATE"]


def test_the_signing_key_must_be_rsa() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    cert, _, _ = seal()
    with pytest.raises(TypeError, match="RSA"):
        SigningIdentity(ec.generate_private_key(ec.SECP256R1()), cert)  # type: ignore[arg-type]
