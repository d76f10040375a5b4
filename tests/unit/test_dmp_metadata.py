"""DMP metadata: the ITI-41 request built from the CR-BIO fixtures is valid XDS.b and says
what the CDA header and the message say; a header lacking a required element is refused
with the element named."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from uuid import NAMESPACE_OID, UUID, uuid5

import pytest
from lxml import etree

from connectors.dmp import (
    Code,
    MetadataSettings,
    build_metadata,
    build_request,
    publication_of,
)
from eai.errors import PermanentDeliveryError
from eai.messages import MEDIA_CDA_XML, MEDIA_FHIR_JSON, MessageFacts, OutboxItem
from eai.xds import xds_time
from tests._paths import CDA, HL7V2, REPO

XSD = REPO / "tests" / "xsd" / "xds" / "IHE" / "xds-b-with-xcf.xsd"
NS = {
    "rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0",
    "xdsb": "urn:ihe:iti:xds-b:2007",
}
INS = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.10"
SETTINGS = MetadataSettings(source_id="1.2.250.1.999.1.1")
CDA_SETTINGS = MetadataSettings(
    source_id="1.2.250.1.999.1.1", content_type=Code("07", "1.2.250.1.213.2.2", "Externe")
)
NOW = datetime(2026, 12, 6, 22, 0, 0, tzinfo=UTC)
ORU = HL7V2 / "oru_r01_crbio_init.hl7"
CRBIO = sorted(CDA.glob("BIO-CR-BIO_*.xml"))
IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"
CISIS_FORMAT = "1.2.250.1.213.1.1.4.2.282"


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def facts(**flags: str) -> MessageFacts:
    return MessageFacts(flags={"DESTDMP": "Y", **flags}, ins=INS, ins_oid=INS_OID)


def item(payload: bytes, media_type: str = "application/hl7-v2", **flags: str) -> OutboxItem:
    return OutboxItem(1, 1, "dmp", payload, "015", "k", media_type=media_type, facts=facts(**flags))


def oru_document() -> bytes:
    """The CDA of the fixture ORU, decoded here without the engine's code."""
    text = ORU.read_bytes().decode("utf-8")
    obx = next(s for s in re.split(r"[\r\n]+", text) if s.startswith("OBX|1|ED|"))
    data = obx.split("|")[5].split("^")[4]
    return base64.b64decode(data + "=" * (-len(data) % 4))


def request_for(
    it: OutboxItem, settings: MetadataSettings = SETTINGS
) -> tuple[etree._Element, bytes]:
    publication = publication_of(it)
    submission, entry = build_metadata(
        publication, settings, now=NOW, new_uuid=lambda: UUID(int=42)
    )
    return build_request(submission, entry, publication.document), publication.document


def slot(request: etree._Element, owner: str, name: str) -> list[str]:
    path = f"//rim:{owner}/rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()"
    return [str(v) for v in request.xpath(path, namespaces=NS)]


def coded(request: etree._Element, scheme: str) -> list[tuple[str, str]]:
    found = []
    for c in request.xpath(
        f"//rim:Classification[@classificationScheme='{scheme}']", namespaces=NS
    ):
        system = c.xpath(
            "rim:Slot[@name='codingScheme']/rim:ValueList/rim:Value/text()", namespaces=NS
        )
        found.append((c.get("nodeRepresentation"), str(system[0])))
    return found


def external(request: etree._Element, scheme: str) -> str:
    values = request.xpath(
        f"//rim:ExternalIdentifier[@identificationScheme='{scheme}']/@value", namespaces=NS
    )
    assert len(values) == 1
    return str(values[0])


def assert_valid(request: etree._Element) -> None:
    xsd = schema()
    assert xsd.validate(request), xsd.error_log


def test_oru_fixture_gives_a_valid_request_with_the_documents_metadata() -> None:
    request, sent = request_for(item(ORU.read_bytes()))
    assert_valid(request)
    document = oru_document()
    assert sent == document
    assert slot(request, "ExtrinsicObject", "hash") == [hashlib.sha1(document).hexdigest()]
    assert slot(request, "ExtrinsicObject", "size") == [str(len(document))]
    body = request.xpath("//xdsb:Document/text()", namespaces=NS)
    assert base64.b64decode(str(body[0])) == document
    patient = f"{INS}^^^&{INS_OID}&ISO^NH"
    assert external(request, "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427") == patient
    assert external(request, "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446") == patient
    # uniqueId: the CDA id@root, an OID, never OID^extension
    assert (
        external(request, "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab") == "1.2.250.1.213.1.1.9"
    )
    assert external(request, "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8") == f"2.25.{42}"
    assert external(request, "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832") == "1.2.250.1.999.1.1"
    # times in UTC: effectiveTime 20210104160527+0100
    assert slot(request, "ExtrinsicObject", "creationTime") == ["20210104150527"]
    assert slot(request, "ExtrinsicObject", "serviceStartTime") == ["20230104082200"]
    assert slot(request, "ExtrinsicObject", "serviceStopTime") == ["20230104150500"]
    assert slot(request, "RegistryPackage", "submissionTime") == ["20261206220000"]
    assert slot(request, "ExtrinsicObject", "languageCode") == ["fr-FR"]
    assert slot(request, "ExtrinsicObject", "legalAuthenticator") == [
        "801234534765^CAMPARINI^Marcel^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    ]
    assert slot(request, "ExtrinsicObject", "sourcePatientId") == [
        "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI"
    ]
    assert slot(request, "ExtrinsicObject", "sourcePatientInfo") == [
        "PID-5|PAT-TROIS^DOMINIQUE^DOMINIQUE^^^^L",
        "PID-7|19790328",
        "PID-8|F",
        "PID-11|^^^^^^BDL^^63220",
    ]
    # PV1-2 = I -> contentTypeCode 03 (the IG's proposal)
    assert coded(request, "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500") == [
        ("03", "1.2.250.1.213.2.2")
    ]
    assert coded(request, "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983") == [
        ("11502-2", "2.16.840.1.113883.6.1")
    ]
    assert coded(request, "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a") == [
        ("10", "1.2.250.1.213.1.1.4.1")
    ]
    assert coded(request, "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f") == [
        ("N", "2.16.840.1.113883.5.25")
    ]
    assert coded(request, "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1") == [
        ("SA25", "1.2.250.1.71.4.2.4")
    ]
    assert coded(request, "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead") == [
        ("AMBULATOIRE", "1.2.250.1.213.1.1.4.9")
    ]
    assert coded(request, "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d") == [
        ("urn:ihe:lab:xd-lab:2008", "1.3.6.1.4.1.19376.1.2.3")
    ]
    authors = request.xpath(
        "//rim:ExtrinsicObject/rim:Classification"
        "[@classificationScheme='urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d']",
        namespaces=NS,
    )
    assert len(authors) == 1
    association = request.xpath("//rim:Association", namespaces=NS)[0]
    assert association.get("sourceObject") == "SubmissionSet01"
    entry_id = f"urn:uuid:{uuid5(NAMESPACE_OID, '1.2.250.1.213.1.1.9')}"
    assert association.get("targetObject") == entry_id
    assert request.xpath("//rim:ExtrinsicObject/@id", namespaces=NS) == [entry_id]
    assert request.xpath("//xdsb:Document/@id", namespaces=NS) == [entry_id]
    assert not request.xpath("//rim:Association[contains(@associationType, 'RPLC')]", namespaces=NS)


def test_confidentiality_flags_add_their_codes() -> None:
    request, _ = request_for(
        item(ORU.read_bytes(), MASQUE_PS="Y", INVISIBLE_PATIENT="Y", INVISIBLE_REP_LEGAUX="Y")
    )
    assert_valid(request)
    assert coded(request, "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f") == [
        ("N", "2.16.840.1.113883.5.25"),
        ("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
        ("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13"),
        ("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13"),
    ]


@pytest.mark.parametrize("path", CRBIO, ids=lambda p: p.name)
def test_crbio_documents_alone_give_valid_requests(path: Path) -> None:
    raw = path.read_bytes()
    request, sent = request_for(item(raw, MEDIA_CDA_XML), CDA_SETTINGS)
    assert_valid(request)
    assert sent == raw
    assert slot(request, "ExtrinsicObject", "hash") == [hashlib.sha1(raw).hexdigest()]
    assert slot(request, "ExtrinsicObject", "size") == [str(len(raw))]
    info = slot(request, "ExtrinsicObject", "sourcePatientInfo")
    assert info[0].startswith("PID-5|")
    assert {"PID-8|F", "PID-8|M"} & set(info)
    assert coded(request, "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500") == [
        ("07", "1.2.250.1.213.2.2")
    ]


@pytest.mark.parametrize(
    ("name", "class_code", "format_code"),
    [
        # ANS ASS_X04 (typeCode -> classCode) and ASS_A11 / ASS_A12 (model -> formatCode)
        ("BIO-CR-BIO_2024.01_TSH_1.xml", "10", ("urn:ihe:lab:xd-lab:2008", IHE_FORMAT)),
        ("CANCER-FRCP_2022.01_Appareil.xml", "10", ("urn:asip:ci-sis:frcp:2011", CISIS_FORMAT)),
        (
            "IMG_CR_IMG_2024.01.xml",
            "31",
            ("urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", IHE_FORMAT),
        ),
        ("TLM-CR_2022.01.xml", "10", ("urn:ihe:iti:xds-sd:pdf:2008", IHE_FORMAT)),
    ],
)
def test_every_national_cda_gets_its_class_and_format_from_the_ans_tables(
    name: str, class_code: str, format_code: tuple[str, str]
) -> None:
    request, _ = request_for(item((CDA / name).read_bytes(), MEDIA_CDA_XML), CDA_SETTINGS)
    assert_valid(request)
    assert coded(request, "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a") == [
        (class_code, "1.2.250.1.213.1.1.4.1")
    ]
    assert coded(request, "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d") == [format_code]


def test_a_level_1_body_of_an_unknown_media_type_is_refused_naming_it() -> None:
    raw = (
        (CDA / "TLM-CR_2022.01.xml")
        .read_bytes()
        .replace(b'mediaType="application/pdf"', b'mediaType="application/x-unknown"')
    )
    with pytest.raises(PermanentDeliveryError, match="application/x-unknown.*ASS_A12"):
        request_for(item(raw, MEDIA_CDA_XML), CDA_SETTINGS)


def test_a_cda_alone_without_a_configured_content_type_is_refused() -> None:
    with pytest.raises(PermanentDeliveryError, match="contentTypeCode"):
        request_for(item(CRBIO[0].read_bytes(), MEDIA_CDA_XML))


def _without(raw: bytes, pattern: str) -> bytes:
    text = raw.decode("utf-8")
    cut, count = re.subn(pattern, "", text, count=1, flags=re.S)
    assert count == 1, pattern
    return cut.encode("utf-8")


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        (r"<legalAuthenticator>.*?</legalAuthenticator>", "legalAuthenticator/assignedEntity/id"),
        (r"<languageCode [^>]*/>", "ClinicalDocument/languageCode/@code (languageCode)"),
        (r"<title>[^<]*</title>", "ClinicalDocument/title (title)"),
        (r"<healthCareFacility>.*?</healthCareFacility>", "healthCareFacility/code/@code"),
        (r"<low value=\"20230104092200\+0100\" />", "serviceEvent/effectiveTime/low/@value"),
        (r"<confidentialityCode [^>]*/>", "(confidentialityCode)"),
        (r"<effectiveTime value=\"20210104160527\+0100\" />", "(creationTime)"),
    ],
)
def test_a_header_lacking_a_required_element_is_refused_naming_it(pattern: str, named: str) -> None:
    document = _without(oru_document(), pattern)
    with pytest.raises(PermanentDeliveryError) as caught:
        request_for(item(document, MEDIA_CDA_XML), CDA_SETTINGS)
    assert named in str(caught.value)
    assert "PAT-TROIS" not in str(caught.value)


def test_without_a_qualified_ins_nothing_is_built() -> None:
    unqualified = OutboxItem(
        1, 1, "dmp", ORU.read_bytes(), "015", "k", facts=MessageFacts(flags={"DESTDMP": "Y"})
    )
    with pytest.raises(PermanentDeliveryError, match="qualified"):
        publication_of(unqualified)


def test_other_media_types_are_refused() -> None:
    with pytest.raises(PermanentDeliveryError, match="fhir"):
        publication_of(item(b"{}", MEDIA_FHIR_JSON))


@pytest.mark.parametrize(
    ("document_id", "unique_id"),
    [('<id root="1.2.3.4" extension="17"/>', "1.2.3.4.17"), ('<id root="1.2.3.4"/>', "1.2.3.4")],
)
def test_unique_id_is_an_oid(document_id: str, unique_id: str) -> None:
    document = oru_document().replace(b'<id root="1.2.250.1.213.1.1.9"/>', document_id.encode(), 1)
    request, _ = request_for(item(document, MEDIA_CDA_XML), CDA_SETTINGS)
    assert external(request, "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab") == unique_id


def test_a_non_numeric_id_extension_is_refused() -> None:
    document = oru_document().replace(
        b'<id root="1.2.250.1.213.1.1.9"/>', b'<id root="1.2.3.4" extension="AB-12"/>', 1
    )
    with pytest.raises(PermanentDeliveryError, match=r"OID\^extension"):
        request_for(item(document, MEDIA_CDA_XML), CDA_SETTINGS)


@pytest.mark.parametrize(
    ("ts", "dtm"),
    [
        ("20210104160527+0100", "20210104150527"),
        ("20210101003000+0200", "20201231223000"),
        ("202301041120+0100", "202301041020"),
        ("20210104160527-0500", "20210104210527"),
        ("19790328", "19790328"),
        ("20210104160527", "20210104160527"),
    ],
)
def test_hl7_times_become_utc_dtm(ts: str, dtm: str) -> None:
    assert xds_time(ts) == dtm


def test_a_deletion_is_an_iti57_status_change_never_a_publication() -> None:
    """TD3.3c: the deleted document's entry (the entryUUID eai gave it) goes from Approved
    to urn:asip:ci-sis:2010:StatusType:Deleted; no document entry, no document."""
    from eai.xds import build_status_update, build_submission_set, document_entry_uuid

    publication = publication_of(item(ORU.read_bytes(), document_action="delete"))
    submission = build_submission_set(publication, SETTINGS, now=NOW)
    unique_id, target = document_entry_uuid(publication)
    request = build_status_update(submission, target)
    assert_valid(request)
    assert unique_id == "1.2.250.1.213.1.1.9"
    assert target == f"urn:uuid:{uuid5(NAMESPACE_OID, unique_id)}"
    (update,) = request.xpath("//rim:Association", namespaces=NS)
    assert update.get("associationType") == (
        "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
    )
    assert (update.get("sourceObject"), update.get("targetObject")) == ("SubmissionSet01", target)
    assert slot(request, "Association", "OriginalStatus") == [
        "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    ]
    assert slot(request, "Association", "NewStatus") == ["urn:asip:ci-sis:2010:StatusType:Deleted"]
    assert request.xpath("//rim:ExtrinsicObject | //xdsb:Document", namespaces=NS) == []
    assert external(request, "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446") == (
        f"{INS}^^^&{INS_OID}&ISO^NH"
    )


def replacement_document() -> bytes:
    """The ORU's CDA as its version 2: another id, RPLC of the first (CDA R2 relatedDocument)."""
    document = oru_document().replace(
        b'<id root="1.2.250.1.213.1.1.9"/>', b'<id root="1.2.250.1.213.1.1.9.2"/>', 1
    )
    related = (
        b'<relatedDocument typeCode="RPLC"><parentDocument>'
        b'<id root="1.2.250.1.213.1.1.9"/></parentDocument></relatedDocument>\n  <componentOf>'
    )
    return document.replace(b"<componentOf>", related, 1)


def test_a_replacement_carries_rplc_to_the_original_entry() -> None:
    request, _ = request_for(
        item(replacement_document(), MEDIA_CDA_XML, document_action="replace"), CDA_SETTINGS
    )
    assert_valid(request)
    (rplc,) = request.xpath(
        "//rim:Association[@associationType='urn:ihe:iti:2007:AssociationType:RPLC']",
        namespaces=NS,
    )
    assert rplc.get("sourceObject") == f"urn:uuid:{uuid5(NAMESPACE_OID, '1.2.250.1.213.1.1.9.2')}"
    assert rplc.get("targetObject") == f"urn:uuid:{uuid5(NAMESPACE_OID, '1.2.250.1.213.1.1.9')}"


def test_a_replacement_without_its_parent_document_is_refused_naming_it() -> None:
    with pytest.raises(PermanentDeliveryError, match="relatedDocument.*parentDocument/id"):
        request_for(item(oru_document(), MEDIA_CDA_XML, document_action="replace"), CDA_SETTINGS)


def test_the_submission_set_signature_is_a_document_that_signs_the_set() -> None:
    from connectors.dmp._dsg import build_dsg
    from connectors.dmp._vihf import SigningIdentity
    from eai.xds import signature_entry
    from tests._pki import make_seal

    cert, key, _ = make_seal()
    publication = publication_of(item(ORU.read_bytes()))
    submission, entry = build_metadata(publication, SETTINGS, now=NOW)
    signature = build_dsg(
        [(entry.unique_id, publication.document)], "2.25.99", SigningIdentity(key, cert), now=NOW
    )
    signed = signature_entry(entry, submission, signature, "2.25.99")
    request = build_request(submission, entry, publication.document, (signed, signature))
    assert_valid(request)
    (signs,) = request.xpath(
        "//rim:Association[@associationType='urn:ihe:iti:2007:AssociationType:signs']",
        namespaces=NS,
    )
    assert (signs.get("sourceObject"), signs.get("targetObject")) == (
        signed.entry_uuid,
        "SubmissionSet01",
    )
    manifest = etree.fromstring(signature).xpath(
        "//ds:Manifest/ds:Reference", namespaces={"ds": "http://www.w3.org/2000/09/xmldsig#"}
    )
    assert [r.get("URI") for r in manifest] == ["urn:oid:1.2.250.1.213.1.1.9"]
    digest = base64.b64encode(hashlib.sha256(publication.document).digest()).decode()
    assert manifest[0].findtext("{http://www.w3.org/2000/09/xmldsig#}DigestValue") == digest
    assert coded(request, "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983") == [
        ("11502-2", "2.16.840.1.113883.6.1"),
        ("E1762", "ASTM"),
    ]
