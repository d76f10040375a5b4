"""The XML-DSig pieces of the submission set's detached XAdES signature
(:mod:`connectors.dmp._dsg`): exclusive C14N, SHA-256 digests, RSA-SHA256 (PKCS#1 v1.5)
signature values, the ``ds:`` namespace.

Touches: nothing.

Built on lxml's C14N and cryptography (signxml, which signs the VIHF, makes enveloped
signatures, not this detached XAdES layout); the tests and the stand-in verify the
signature with xmlsec1, another XML-DSig implementation.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

__all__ = [
    "DS",
    "EXC_C14N",
    "RSA_SHA256",
    "SHA256",
    "c14n",
    "digest",
    "ds_element",
    "rsa_sha256",
]

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def ds_element(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    """A ``ds:`` child of ``parent``."""
    return etree.SubElement(parent, f"{{{DS}}}{tag}", attributes)


def c14n(element: etree._Element) -> bytes:
    """``element``'s exclusive canonical form, without comments."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def digest(data: bytes) -> str:
    """The base64 SHA-256 of ``data`` (a ``DigestValue``)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def rsa_sha256(key: rsa.RSAPrivateKey, signed_info: etree._Element) -> str:
    """The base64 RSA-SHA256 signature of ``signed_info``'s exclusive C14N (a
    ``SignatureValue``)."""
    value = key.sign(c14n(signed_info), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(value).decode("ascii")
