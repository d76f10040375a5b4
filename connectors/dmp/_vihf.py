"""The VIHF: the SAML 2 assertion (VIHF v3.0) that authenticates a DMP request, signed.

Touches: nothing (the key and certificate are handed in, already loaded).

Laid out as the ANS sample (``ansforge/DRIM-M_DATA`` ``informatif/XDS/publication.xml``)
and the IG's ``mapping.md`` ("Mapping VIHF", and its automate example): ``Issuer`` in
X509SubjectName format holding the DN of the signing certificate; an enveloped XML-DSig
signature right after it (exclusive C14N, RSA-SHA256, SHA-256 digest, the certificate in
``KeyInfo``), made by signxml (a maintained library, as the issue asks; the tests verify
it with xmlsec1, another implementation); ``Subject/NameID``; an ``AuthnStatement``; the attributes
``VIHF_Version`` (``3.0``: every ANS sample says 3.0 where the IG's table says 4.0),
``Authentification_Mode`` (``INDIRECTE``), ``Identifiant_Structure``, ``Secteur_Activite``,
``Ressource_URN`` (``urn:dmp``), ``resource-id`` (the INS as ``<INS>^^^&<OID>&ISO^NH``),
``subject-id``, ``subject:role`` and ``purposeofuse`` (hl7v3 ``CE`` elements), ``LPS_*``,
and the confidentiality code when the message asks for a secret connection
(``CONNEXION_SECRETE`` = ``Y``). Subject and role come from the document's author (the
issue's rule: the CDA author's RPPS id as NameID, its name as subject-id, its
``G15_<profession>/<savoir-faire>`` code as the two roles); structure and software from
the destination's config. Attribute names are case-sensitive.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from connectors.dmp._vihf_settings import VihfSettings
from connectors.dmp._xmldsig import DS
from eai.errors import PermanentDeliveryError
from eai.xds import Code, Person

__all__ = ["SAML", "SigningIdentity", "VihfSettings", "build_vihf", "issuer_dn"]

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7V3 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
X509_SUBJECT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
_PROFESSION_SYSTEM = "1.2.250.1.71.1.2.7"  # TRE_G15 (as the ANS sample's Role code="10")
_SKILL_SYSTEM = "1.2.250.1.71.4.2.5"  # TRE_R38 savoir-faire (the sample's Role SM26)
_AUTHOR_CODE = re.compile(r"^G15_(\w+?)(?:/(\w+))?$")
_SECRET = Code("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13", "Non visible par le patient")


@dataclass(frozen=True, slots=True, repr=False)
class SigningIdentity:
    """The structure's seal key and certificate (RSA: the VIHF is RSA-SHA256), with what
    every signature writes of the certificate, computed once."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    der: bytes = field(init=False, compare=False)
    """The certificate, DER."""
    subject: str = field(init=False, compare=False)
    """:func:`issuer_dn` of the certificate."""

    def __post_init__(self) -> None:
        if not isinstance(self.key, rsa.RSAPrivateKey):
            raise TypeError("the VIHF signing key must be RSA (RSA-SHA256)")
        object.__setattr__(self, "der", self.certificate.public_bytes(serialization.Encoding.DER))
        object.__setattr__(self, "subject", issuer_dn(self.certificate))

    def __repr__(self) -> str:
        return f"SigningIdentity(subject={self.subject!r})"


def issuer_dn(certificate: x509.Certificate) -> str:
    """The certificate's subject DN, most specific first, as the ANS sample writes it
    (``CN=..., OU=..., O=..., C=FR``)."""
    return ", ".join(rdn.rfc4514_string() for rdn in reversed(certificate.subject.rdns))


def _saml(tag: str) -> str:
    return f"{{{SAML}}}{tag}"


def _attribute(statement: etree._Element, name: str, *values: str | etree._Element) -> None:
    attribute = etree.SubElement(statement, _saml("Attribute"), Name=name)
    for value in values:
        holder = etree.SubElement(attribute, _saml("AttributeValue"))
        if isinstance(value, str):
            holder.text = value
        else:
            holder.append(value)


def _ce(tag: str, code: Code) -> etree._Element:
    element = etree.Element(f"{{{HL7V3}}}{tag}", nsmap={None: HL7V3, "xsi": XSI})
    element.set("code", code.code)
    element.set("codeSystem", code.system)
    if code.display:
        element.set("displayName", code.display)
    element.set(f"{{{XSI}}}type", "CE")
    return element


def _roles(author: Person, settings: VihfSettings) -> list[Code]:
    code = author.specialty.code if author.specialty is not None else ""
    match = _AUTHOR_CODE.match(code)
    if match:
        profession, skill = match.groups()
        roles = [Code(profession, _PROFESSION_SYSTEM)]
        if skill:
            roles.append(Code(skill, _SKILL_SYSTEM))
        return roles
    if settings.default_role is not None:
        return [settings.default_role]
    raise PermanentDeliveryError(
        "the document's ClinicalDocument/author/assignedAuthor/code gives no G15 profession "
        "(VIHF subject:role) and the destination sets no default role"
    )


def build_vihf(
    author: Person,
    ins: str,
    ins_oid: str,
    secret: bool,
    settings: VihfSettings,
    signer: SigningIdentity,
    *,
    now: datetime | None = None,
    new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
) -> etree._Element:
    """The signed ``saml2:Assertion`` element (its own tree: serialise it as it is).

    Raises PermanentDeliveryError when the author gives no role."""
    instant = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    instant = instant.replace("+00:00", "Z")
    assertion_id = f"_{new_uuid()}"
    assertion = etree.Element(
        _saml("Assertion"),
        nsmap={"saml2": SAML, "xsi": XSI},
        ID=assertion_id,
        IssueInstant=instant,
        Version="2.0",
    )
    issuer = etree.SubElement(assertion, _saml("Issuer"), Format=X509_SUBJECT)
    issuer.text = signer.subject
    # signxml puts the enveloped signature where this placeholder is: after the Issuer,
    # where the SAML schema wants it.
    etree.SubElement(assertion, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    subject = etree.SubElement(assertion, _saml("Subject"))
    etree.SubElement(subject, _saml("NameID")).text = author.id.extension or author.id.root
    authn = etree.SubElement(assertion, _saml("AuthnStatement"), AuthnInstant=instant)
    context = etree.SubElement(authn, _saml("AuthnContext"))
    etree.SubElement(context, _saml("AuthnContextClassRef")).text = settings.authn_context
    statement = etree.SubElement(assertion, _saml("AttributeStatement"))
    _attribute(statement, "VIHF_Version", "3.0")
    _attribute(statement, "Authentification_Mode", "INDIRECTE")
    _attribute(statement, "Identifiant_Structure", settings.structure_id)
    _attribute(statement, "Secteur_Activite", settings.activity_sector)
    _attribute(statement, "Ressource_URN", "urn:dmp")
    _attribute(
        statement, "urn:oasis:names:tc:xacml:2.0:resource:resource-id", f"{ins}^^^&{ins_oid}&ISO^NH"
    )
    name = " ".join(part for part in (author.given, author.family) if part)
    _attribute(statement, "urn:oasis:names:tc:xspa:1.0:subject:subject-id", name or "inconnu")
    _attribute(
        statement,
        "urn:oasis:names:tc:xacml:2.0:subject:role",
        *(_ce("Role", role) for role in _roles(author, settings)),
    )
    _attribute(
        statement,
        "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
        _ce("PurposeOfUse", Code("normal", "1.2.250.1.213.1.1.4.248", "Acces normal")),
    )
    if settings.software_id:
        _attribute(statement, "LPS_ID", settings.software_id)
    _attribute(statement, "LPS_Nom", settings.software_name)
    _attribute(statement, "LPS_Version", settings.software_version)
    _attribute(statement, "LPS_ID_HOMOLOGATION_DMP", settings.homologation_id)
    if secret:
        _attribute(statement, CONFIDENTIALITY, _ce("ConfidentialityCode", _SECRET))
    signed: etree._Element = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(
        assertion,
        key=signer.key,
        cert=[signer.certificate],
        reference_uri=f"#{assertion_id}",
        id_attribute="ID",
    )
    return signed
