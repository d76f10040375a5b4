"""A stand-in DMP repository (IHE XDS.b ITI-41 over HTTPS with mutual TLS). NOT a DMP.

Touches: network and files (see :mod:`standins.dmp.server`).

It receives a Provide and Register Document Set-b request as the DMP would and checks it
against the published formats: the SOAP 1.2 MTOM/XOP package (W3C), the envelope (W3C
SOAP 1.2 schema) with its WS-Addressing headers, the VIHF (a SAML 2 assertion with the
attributes the ANS sample ``ansforge/DRIM-M_DATA`` ``informatif/XDS/publication.xml``
carries, signature verified by xmlsec1), the submission-set signature (IHE DSG: XAdES,
verified by xmlsec1, its Manifest against the document parts), the request against the
IHE XDS.b and OASIS ebRS 3.0/ebRIM 3.0 schemas (``tests/xsd/xds``), and the ebRIM rules
of IHE ITI TF-3 §4.2 (required slots, classifications and identifiers, one patientId,
hash and size of each document part, unique ids not registered twice); see
:mod:`standins.dmp._checks`. It answers Success, or the failure a test asks for.
"""

from standins.dmp.server import Answer, DmpStandin, Received

__all__ = ["Answer", "DmpStandin", "Received"]
