"""MSSanté: the routing matrix row by row, the mails' recipients and X-MSS headers, the
IHE_XDM.zip layout and its METADATA.XML (valid ebRS 3.0, hash and size of the document)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import itertools
import re
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cache

import pytest
from lxml import etree

from connectors.mssante import (
    DOCUMENT,
    FLAGS,
    MATRIX,
    METADATA,
    RULE,
    Audience,
    audience,
    build_mails,
    build_xdm,
    mail_source,
)
from connectors.mssante.config import CodedValue, MssanteDestinationConfig
from connectors.mssante.destination import prepare
from eai import hl7
from eai.errors import PermanentDeliveryError
from eai.messages import MEDIA_CDA_XML, MessageFacts, OutboxItem, Recipient
from tests._cisis import ORU, edit, segments
from tests._paths import CDA, REPO

LCM_XSD = REPO / "tests" / "xsd" / "xds" / "ebRS30" / "lcm.xsd"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS = {"rim": RIM, "lcm": "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"}
INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
CONFIG = MssanteDestinationConfig.model_validate(
    {
        "name": "mss",
        "host": "smtp.mss.test",
        "tls": {"ca": "/nonexistent/ca.pem"},
        "sender": "labo-auto@labo.mssante.fr",
        "source_id": "1.2.250.1.999.1.1",
        "software_id": "EAI-TEST-1",
    }
)


@cache
def lcm_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(LCM_XSD)))


def facts_of(payload: bytes, *, qualified: bool = True, **flags: str) -> MessageFacts:
    message = hl7.parse(payload)
    found = {**hl7.meta_dmp_mss(message), **flags}
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    return MessageFacts(found, recipients, INS if qualified else "", INS_OID if qualified else "")


def item_of(payload: bytes = ORU, **kw: object) -> OutboxItem:
    facts = facts_of(payload, **kw)  # type: ignore[arg-type]
    return OutboxItem(42, 7, "mss", payload, "015", "k", facts=facts)


def parsed(data: bytes) -> EmailMessage:
    mail = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    return mail


# -- the routing matrix ------------------------------------------------------------------

ROW_EXAMPLES = [
    # every value each row allows, as the IG's table lists them
    (row, dict(zip(FLAGS, values, strict=True)))
    for row in MATRIX
    for values in itertools.product(*(sorted(row.allowed[f]) for f in FLAGS))
]


@pytest.mark.parametrize(
    ("row", "flags"),
    ROW_EXAMPLES,
    ids=[f"{r.name[:5]}-{i}" for i, (r, _) in enumerate(ROW_EXAMPLES)],
)
def test_every_combination_of_a_row_gives_its_audience(row, flags) -> None:
    assert audience(flags) == row.audience


def test_the_three_rows_of_the_ig() -> None:
    assert [r.audience for r in MATRIX] == [
        Audience(professionals=True, patient=True),
        Audience(professionals=True, patient=False),
        Audience(professionals=False, patient=True),
    ]


EVERY = list(itertools.product("NY", repeat=len(FLAGS)))


def test_every_combination_outside_the_rows_is_refused_with_the_rule_named() -> None:
    listed = {tuple(sorted(f.items())) for _, f in ROW_EXAMPLES}
    outside = [dict(zip(FLAGS, v, strict=True)) for v in EVERY]
    outside = [f for f in outside if tuple(sorted(f.items())) not in listed]
    assert len(outside) == 2 ** len(FLAGS) - len(listed)
    for flags in outside:
        with pytest.raises(PermanentDeliveryError, match=RULE):
            audience(flags)


@pytest.mark.parametrize(
    "change",
    [
        {"DESTMSSANTEPAT": "N"},  # PS only while the patient may see it: not in the table
        {"CONNEXION_SECRETE": "Y"},
        {"MASQUE_PS": "Y"},
        {"DESTMSSANTEPS": "N", "DESTMSSANTEPAT": "N"},
        {"DESTMSSANTEPS": "invalid"},
    ],
)
def test_fixture_flags_changed_out_of_the_matrix_are_refused(change) -> None:
    flags = {**hl7.meta_dmp_mss(hl7.parse(ORU)), **change}
    with pytest.raises(PermanentDeliveryError, match="not in the MSSanté routing matrix"):
        audience(flags)


# -- the mails -----------------------------------------------------------------------------


def mails_of(item: OutboxItem):
    source = mail_source(item)
    xdm = build_xdm(source.publication, CONFIG.metadata_settings(), now=NOW)
    return build_mails(
        CONFIG, item, source, xdm, audience(item.facts.flags), now=NOW, token=lambda: "abc"
    )


def test_the_fixture_gives_a_mail_to_the_professional_and_one_to_the_patient() -> None:
    ps, patient = mails_of(item_of())
    assert ps.part == "professionals" and patient.part == "patient"
    assert ps.recipients == ("adam.hoda@test-ci-sis.mssante.fr",)
    # the patient's mailbox is its qualified INS, not the PRT address the message gives
    assert patient.recipients == (f"{INS}@patient.mssante.fr",)
    mail = parsed(ps.data)
    assert mail["From"] == "labo-auto@labo.mssante.fr"
    assert mail["To"] == "adam.hoda@test-ci-sis.mssante.fr"
    assert mail["Reply-To"] == "adam.hoda@test-ci-sis.mssante.fr"
    assert mail["Message-ID"] == "<eai.42.abc@labo.mssante.fr>"
    assert mail["X-MSS-CODECDA"] == "11502-2"
    assert mail["X-MSS-INS"] == "O"
    assert mail["X-MSS-NIL"] == "EAI-TEST-1"
    assert mail["X-MSS-MES"] is None
    assert mail["Disposition-Notification-To"] == "labo-auto@labo.mssante.fr"  # ACK_LECTURE_MSS
    assert INS not in str(mail["Subject"])
    # the national example's CORPSMAIL_PS is cut short mid-quantum: its whole quanta are kept
    assert mail.get_body(("plain",)).get_content().startswith("Cher confrère, vous trouverez")
    names = [p.get_filename() for p in mail.iter_attachments()]
    assert names == ["IHE_XDM.zip"]


def test_no_read_receipt_header_without_ack_lecture() -> None:
    ps, _ = mails_of(item_of(ACK_LECTURE_MSS="N"))
    assert parsed(ps.data)["Disposition-Notification-To"] is None


def test_professionals_only_without_a_qualified_identity_says_x_mss_ins_n() -> None:
    (ps,) = mails_of(item_of(qualified=False, INVISIBLE_PATIENT="Y", DESTMSSANTEPAT="N"))
    mail = parsed(ps.data)
    assert ps.recipients == ("adam.hoda@test-ci-sis.mssante.fr",)
    assert mail["X-MSS-INS"] == "N"
    assert "patient.mssante.fr" not in ps.data.decode()


def test_a_mail_for_the_patient_without_a_qualified_ins_is_refused() -> None:
    with pytest.raises(PermanentDeliveryError, match="qualified INS"):
        mails_of(item_of(qualified=False))


def test_bodies_and_fin_from_the_message() -> None:
    body_ps = "Cher confrère, voici le CR."
    import base64

    obx = (
        "OBX|12|ED|CORPSMAIL_PS^Corps du mail pour un PS^MetaDMPMSS||^TEXT^^Base64^"
        + base64.b64encode(body_ps.encode()).decode()
        + "||||||F"
    )
    obx2 = "OBX|13|ED|CORPSMAIL_PATIENT^Corps^MetaDMPMSS||^TEXT^^A^Bonjour, votre CR.||||||F"
    kept = [s for s in segments(ORU) if "CORPSMAIL" not in s]
    segs = [*kept, obx, obx2, "NTE|1||Pas de réponse|FIN"]
    payload = ("\r".join(segs) + "\r").encode()
    ps, patient = mails_of(item_of(payload))
    assert parsed(ps.data).get_body(("plain",)).get_content().strip() == body_ps
    pat = parsed(patient.data)
    assert pat.get_body(("plain",)).get_content().strip() == "Bonjour, votre CR."
    assert pat["X-MSS-MES"] == "FIN" and pat["Reply-To"] is None
    assert parsed(ps.data)["X-MSS-MES"] is None


def test_no_professional_address_is_refused() -> None:
    payload = ORU
    for occurrence in (2,):
        payload = edit(payload, "PRT", 15, "", occurrence)
    with pytest.raises(PermanentDeliveryError, match="no professional recipient"):
        mails_of(item_of(payload))


def test_a_delivery_outside_the_matrix_is_refused_before_anything_is_built() -> None:
    with pytest.raises(PermanentDeliveryError, match=RULE):
        prepare(CONFIG, item_of(DESTMSSANTEPAT="N"))


# -- the XDM zip -----------------------------------------------------------------------------


def test_the_zip_layout_and_its_metadata_validate_and_describe_the_document() -> None:
    item = item_of()
    source = mail_source(item)
    xdm = build_xdm(source.publication, CONFIG.metadata_settings(), now=NOW)
    archive = zipfile.ZipFile(io.BytesIO(xdm.data))
    assert sorted(archive.namelist()) == sorted(["INDEX.HTM", "README.TXT", METADATA, DOCUMENT])
    assert METADATA == "IHE_XDM/SUBSET01/METADATA.XML"
    document = archive.read(DOCUMENT)
    assert document == hl7.embedded_documents(hl7.parse(ORU))[0].data
    root = etree.fromstring(archive.read(METADATA))
    assert root.tag == f"{{{NS['lcm']}}}SubmitObjectsRequest"
    schema = lcm_schema()
    assert schema.validate(root), schema.error_log

    def slot(name: str) -> list[str]:
        return [
            str(v)
            for v in root.xpath(
                f"//rim:ExtrinsicObject/rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()",
                namespaces=NS,
            )
        ]

    assert slot("URI") == ["DOC0001.XML"]
    assert slot("hash") == [hashlib.sha1(document).hexdigest()]
    assert slot("size") == [str(len(document))]
    patient = root.xpath(
        "//rim:ExternalIdentifier[rim:Name/rim:LocalizedString/@value="
        "'XDSDocumentEntry.patientId']/@value",
        namespaces=NS,
    )
    assert patient == [f"{INS}^^^&{INS_OID}&ISO^NH"]
    assert b"DOC0001.XML" in archive.read("INDEX.HTM")
    assert re.search(rb"IHE XDM", archive.read("README.TXT"))
    assert INS.encode() not in archive.read("INDEX.HTM") + archive.read("README.TXT")


def test_without_a_qualified_ins_the_metadata_names_the_local_patient_id() -> None:
    item = item_of(qualified=False, INVISIBLE_PATIENT="Y", DESTMSSANTEPAT="N")
    source = mail_source(item)
    xdm = build_xdm(source.publication, CONFIG.metadata_settings(), now=NOW)
    root = etree.fromstring(zipfile.ZipFile(io.BytesIO(xdm.data)).read(METADATA))
    assert lcm_schema().validate(root)
    ids = root.xpath("//rim:ExternalIdentifier/@value", namespaces=NS)
    assert not any(INS in str(v) for v in ids)
    assert any(str(v).endswith("&ISO^PI") for v in ids)


def test_only_a_mail_for_the_patient_waits_for_a_qualified_identity() -> None:
    assert CONFIG.needs_qualified_identity({"DESTMSSANTEPAT": "Y", "DESTMSSANTEPS": "Y"})
    assert not CONFIG.needs_qualified_identity({"DESTMSSANTEPAT": "N", "DESTMSSANTEPS": "Y"})
    strict = CONFIG.model_copy(update={"require_qualified_identity": True})
    assert strict.needs_qualified_identity({"DESTMSSANTEPAT": "N"})


def test_smtp_auth_needs_both_user_and_password() -> None:
    base = CONFIG.model_dump(mode="json", exclude={"password"})
    with pytest.raises(ValueError, match="user and password"):
        MssanteDestinationConfig.model_validate({**base, "user": "bal"})
    with pytest.raises(ValueError, match="user and password"):
        MssanteDestinationConfig.model_validate({**base, "password": "secret"})
    empty = MssanteDestinationConfig.model_validate({**base, "user": "", "password": ""})
    assert empty.user == ""
    both = MssanteDestinationConfig.model_validate({**base, "user": "bal", "password": "hunter2"})
    assert "hunter2" not in repr(both)


def test_a_level_1_cda_carrying_a_pdf_gets_the_pdf_beside_the_zip() -> None:
    cda = (CDA / "TLM-CR_2022.01.xml").read_bytes()  # nonXMLBody, mediaType application/pdf
    facts = MessageFacts(
        {"DESTMSSANTEPS": "Y", "INVISIBLE_PATIENT": "Y", "DESTMSSANTEPAT": "N"},
        (Recipient("RCT", "professional", "adam.hoda@test-ci-sis.mssante.fr"),),
    )
    item = OutboxItem(3, 3, "mss", cda, "", "k", media_type=MEDIA_CDA_XML, facts=facts)
    # a CDA alone has no PV1-2: the destination gives the contentTypeCode
    code = {"code": "07", "system": "1.2.250.1.213.2.2", "display": "Consultation externe"}
    config = CONFIG.model_copy(update={"content_type_code": CodedValue.model_validate(code)})
    source = mail_source(item)
    xdm = build_xdm(source.publication, config.metadata_settings(), now=NOW)
    (mail,) = build_mails(config, item, source, xdm, audience(facts.flags), now=NOW)
    parts = {p.get_filename(): p for p in parsed(mail.data).iter_attachments()}
    assert sorted(parts) == ["DOC0001.PDF", "IHE_XDM.zip"]
    assert parts["DOC0001.PDF"].get_content_type() == "application/pdf"
    assert parts["DOC0001.PDF"].get_content().startswith(b"%PDF")
    zipped = zipfile.ZipFile(io.BytesIO(parts["IHE_XDM.zip"].get_content()))
    assert zipped.read(DOCUMENT) == cda
