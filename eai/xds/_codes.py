"""The fixed identifiers of XDS.b metadata and the CI-SIS code tables (DMP, MSSanté XDM).

Touches: nothing.

UUIDs: IHE ITI TF-3 §4.2.5 (classification schemes and identification schemes), as in
the ANS sample ``ansforge/DRIM-M_DATA`` ``informatif/XDS/publication.xml``. Code
systems: the CI-SIS (``/work/shared/docs-fr.md`` "DMP (IHE XDS.b ITI-41)" cites them).
The tables below are the defaults of a destination; its config may add to them.
"""

from __future__ import annotations

from types import MappingProxyType

from eai.xds._ans_tables import (
    CLASS_BY_TYPE,
    CLASS_NAMES,
    FORMAT_BY_MEDIA_TYPE,
    FORMAT_BY_TEMPLATE,
)
from eai.xds._code import Code

__all__ = [
    "CONFIDENTIALITY_FLAGS",
    "CONTENT_TYPE_BY_PATIENT_CLASS",
    "DEFAULT_CLASS_CODES",
    "DEFAULT_FORMAT_CODES",
    "FORMAT_BY_MEDIA",
    "FORMAT_PDF",
    "INS_OIDS",
    "RPPS_OID",
    "SCHEME",
]

SCHEME = MappingProxyType(
    {
        # XDSSubmissionSet
        "ss.object": "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
        "ss.author": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
        "ss.contentTypeCode": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
        "ss.patientId": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
        "ss.sourceId": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
        "ss.uniqueId": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
        # XDSDocumentEntry
        "de.object": "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",
        "de.author": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
        "de.classCode": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
        "de.typeCode": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
        "de.confidentialityCode": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
        "de.formatCode": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
        "de.healthcareFacilityTypeCode": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
        "de.practiceSettingCode": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
        "de.patientId": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
        "de.uniqueId": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    }
)
"""ebRIM classificationScheme / identificationScheme / classificationNode UUIDs."""

RPPS_OID = "1.2.250.1.71.4.2.1"
"""Identifiers of health professionals (RPPS/ADELI, prefixed): XCN type ``IDNPS``."""
STRUCTURE_OID = "1.2.250.1.71.4.2.2"
"""Identifiers of health structures (FINESS, SIRET..., prefixed): XON type ``IDNST``."""
INS_OIDS = (
    "1.2.250.1.213.1.4.8",
    "1.2.250.1.213.1.4.9",
    "1.2.250.1.213.1.4.10",
    "1.2.250.1.213.1.4.11",
)
"""The INS-NIR and INS-NIA OIDs (production and test)."""

CONTENT_TYPE_SYSTEM = "1.2.250.1.213.2.2"
CONTENT_TYPE_BY_PATIENT_CLASS = MappingProxyType(
    {
        # The IG's proposal (mapping.md, "Lot de soumission", contentTypeCode: PV1-2 I=>03;
        # O=>07; R=>19; N=>97; E=>07 as docs-fr.md records).
        "I": Code("03", CONTENT_TYPE_SYSTEM, "Hospitalisation complète"),
        "O": Code("07", CONTENT_TYPE_SYSTEM, "Consultation externe"),
        "R": Code("19", CONTENT_TYPE_SYSTEM, "Soins de suite et de réadaptation"),
        "N": Code("97", CONTENT_TYPE_SYSTEM, "Non applicable"),
        "E": Code("07", CONTENT_TYPE_SYSTEM, "Consultation externe"),
    }
)
"""contentTypeCode (JDV_J59) from PV1-2 (patient class)."""

_CLASS_SYSTEM = "1.2.250.1.213.1.1.4.1"
DEFAULT_CLASS_CODES = MappingProxyType(
    {
        type_code: Code(class_code, _CLASS_SYSTEM, CLASS_NAMES[class_code])
        for type_code, class_code in CLASS_BY_TYPE.items()
    }
)
"""classCode (JDV_J57-ClassCode-DMP) by typeCode: the ANS table ASS_X04 (see
:mod:`eai.xds._ans_tables`)."""

_IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"
FORMAT_PDF = Code(
    "urn:ihe:iti:xds-sd:pdf:2008", _IHE_FORMAT, "Document à corps non structuré en Pdf/A-1"
)
"""formatCode of a level-1 CDA (``nonXMLBody``) in PDF, as docs-fr.md records."""
FORMAT_BY_MEDIA = MappingProxyType(
    {
        media: FORMAT_PDF if code == FORMAT_PDF.code else Code(code, _IHE_FORMAT)
        for media, code in FORMAT_BY_MEDIA_TYPE.items()
    }
)
"""formatCode of a level-1 CDA by its body's mediaType (ASS_A12)."""
DEFAULT_FORMAT_CODES = MappingProxyType(
    {template: Code(code, system) for template, (code, system) in FORMAT_BY_TEMPLATE.items()}
)
"""formatCode by the CI-SIS model templateId of a structured (level 3) document: the ANS
table ASS_A11 (see :mod:`eai.xds._ans_tables`)."""

_CONF_SYSTEM = "1.2.250.1.213.1.1.4.13"
CONFIDENTIALITY_FLAGS = (
    ("MASQUE_PS", Code("MASQUE_PS", _CONF_SYSTEM, "Masqué aux professionnels de santé")),
    ("INVISIBLE_PATIENT", Code("INVISIBLE_PATIENT", _CONF_SYSTEM, "Non visible par le patient")),
    (
        "INVISIBLE_REP_LEGAUX",
        Code(
            "INVISIBLE_REPRESENTANTS_LEGAUX",
            _CONF_SYSTEM,
            "Non visible par les représentants légaux du patient",
        ),
    ),
)
"""MetaDMPMSS flag (OBX-3.1, value Y) -> extra confidentialityCode of the document entry."""
