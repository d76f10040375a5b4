"""The submission-set signature: an IHE DSG detached XAdES signature document.

Touches: nothing (the key and certificate are handed in, already loaded).

As the ANS sample (``ansforge/DRIM-M_DATA`` ``informatif/XDS/publication.xml``, the part
``<0.3>``) and IHE ITI DSG (Document Digital Signature, ITI TF-3 §5.5): a
``ds:Signature`` whose ``Id`` is the signature document's uniqueId, signing (exclusive
C14N, RSA-SHA256, SHA-256 digests) two references: the ``#IHEManifest`` Manifest (``Type``
``...xmldsig#Manifest``), which lists each published document as ``urn:oid:<uniqueId>``
with the SHA-256 of its bytes, and the XAdES ``SignedProperties`` (signing time, signing
certificate digest); the purpose of signature (``1.2.840.10065.1.12.1.14``, Source) as a
SignatureProperty. Built with lxml, canonicalised with lxml's exclusive C14N and signed
with cryptography; the tests and the stand-in verify it with xmlsec1. The ebRIM side
(a document entry ``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1`` / ``E1762`` /
``http://www.w3.org/2000/09/xmldsig#`` and a ``signs`` association to the submission set)
is :mod:`eai.xds`'s.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime

from lxml import etree

from connectors.dmp._vihf import SigningIdentity
from connectors.dmp._xmldsig import (
    DS,
    EXC_C14N,
    RSA_SHA256,
    SHA256,
    c14n,
    digest,
    ds_element,
    rsa_sha256,
)

__all__ = ["DS", "MANIFEST_ID", "SIGNED_PROPERTIES_ID", "XADES", "build_dsg"]

XADES = "http://uri.etsi.org/01903/v1.3.2#"
MANIFEST_ID = "IHEManifest"
SIGNED_PROPERTIES_ID = "S0-SignedProperties"
PURPOSE_SOURCE = "1.2.840.10065.1.12.1.14"


def _ds(parent: etree._Element | None, tag: str, **attributes: str) -> etree._Element:
    if parent is None:
        return etree.Element(f"{{{DS}}}{tag}", attributes, nsmap={None: DS})
    return ds_element(parent, tag, **attributes)


def _reference(parent: etree._Element, uri: str, value: str, kind: str = "") -> None:
    reference = _ds(parent, "Reference", URI=uri)
    if kind:
        reference.set("Type", kind)
    if uri.startswith("#"):
        transforms = _ds(reference, "Transforms")
        _ds(transforms, "Transform", Algorithm=EXC_C14N)
    _ds(reference, "DigestMethod", Algorithm=SHA256)
    _ds(reference, "DigestValue").text = value


def build_dsg(
    documents: Sequence[tuple[str, bytes]],
    signature_id: str,
    signer: SigningIdentity,
    *,
    now: datetime | None = None,
) -> bytes:
    """The signature document (UTF-8 bytes) over ``documents`` (uniqueId, exact bytes)."""
    signature = _ds(None, "Signature", Id=signature_id)
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", Algorithm=EXC_C14N)
    _ds(signed_info, "SignatureMethod", Algorithm=RSA_SHA256)
    signature_value = _ds(signature, "SignatureValue")
    key_info = _ds(signature, "KeyInfo")
    certificate = signer.der
    _ds(_ds(key_info, "X509Data"), "X509Certificate").text = base64.b64encode(certificate).decode(
        "ascii"
    )
    # XAdES qualifying properties: signing time and the signing certificate's digest.
    properties_object = _ds(signature, "Object")
    qualifying = etree.SubElement(
        properties_object,
        f"{{{XADES}}}QualifyingProperties",
        {"Target": f"#{signature_id}"},
        nsmap={"xades": XADES},
    )
    signed_properties = etree.SubElement(
        qualifying, f"{{{XADES}}}SignedProperties", {"Id": SIGNED_PROPERTIES_ID}
    )
    signature_properties = etree.SubElement(
        signed_properties, f"{{{XADES}}}SignedSignatureProperties"
    )
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    etree.SubElement(signature_properties, f"{{{XADES}}}SigningTime").text = when
    signing_certificate = etree.SubElement(signature_properties, f"{{{XADES}}}SigningCertificate")
    cert = etree.SubElement(signing_certificate, f"{{{XADES}}}Cert")
    cert_digest = etree.SubElement(cert, f"{{{XADES}}}CertDigest")
    _ds(cert_digest, "DigestMethod", Algorithm=SHA256)
    _ds(cert_digest, "DigestValue").text = digest(certificate)
    issuer = etree.SubElement(cert, f"{{{XADES}}}IssuerSerial")
    _ds(issuer, "X509IssuerName").text = signer.certificate.issuer.rfc4514_string()
    _ds(issuer, "X509SerialNumber").text = str(signer.certificate.serial_number)
    # The IHE manifest and the purpose of the signature.
    manifest_object = _ds(signature, "Object")
    purpose = _ds(_ds(manifest_object, "SignatureProperties"), "SignatureProperty")
    purpose.set("Id", "purposeOfSignature")
    purpose.set("Target", f"#{signature_id}")
    purpose.text = PURPOSE_SOURCE
    manifest = _ds(manifest_object, "Manifest", Id=MANIFEST_ID)
    for unique_id, content in documents:
        _reference(manifest, f"urn:oid:{unique_id}", digest(content))
    _reference(signed_info, f"#{MANIFEST_ID}", digest(c14n(manifest)), f"{DS}Manifest")
    _reference(
        signed_info,
        f"#{SIGNED_PROPERTIES_ID}",
        digest(c14n(signed_properties)),
        "http://uri.etsi.org/01903#SignedProperties",
    )
    signature_value.text = rsa_sha256(signer.key, signed_info)
    return etree.tostring(signature, xml_declaration=True, encoding="UTF-8")
