"""The ``cda`` content type (header, XPath ``get``, patient key) and the CDA schema check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eai.cda import CdaDocument, find_clinical_document, parse_cda, read_cda
from eai.cda_schema import default_schema_path, load_schema
from eai.config import When
from eai.content import content_parser, content_types
from eai.errors import InputError
from eai.routing import when_matches
from eai.xml import parse_xml
from tests._paths import CDA, FIXTURES

CDA_FILES = sorted(CDA.glob("*.xml"))
TSH = CDA / "BIO-CR-BIO_2024.01_TSH_1.xml"
XSD = FIXTURES / "xsd" / "infrastructure" / "cda" / "CDA_extended.xsd"
INS_OID = "1.2.250.1.213.1.4.10"

# document code, custodian id extension, document id root: read from each fixture's header
EXPECTED = {
    "BIO-CR-BIO_2024.01_CR-2nde-intention-PDF.xml": (
        "11502-2",
        "1120459876",
        "1.2.250.1.213.1.1.1.55.2024.1.1",
    ),
    "BIO-CR-BIO_2024.01_Electrophorese.xml": (
        "11502-2",
        "1120459876",
        "1.2.250.1.213.1.1.1.55.2024.5.1",
    ),
    "BIO-CR-BIO_2024.01_TSH_1.xml": ("11502-2", "1120459876", "1.2.250.1.213.1.1.1.55.2024.9.1"),
    "CANCER-FRCP_2022.01_Appareil.xml": ("34794-8", "1120456789", "1.2.250.1.213.1.1.1.8.2022.1.1"),
    "IMG_CR_IMG_2024.01.xml": ("18748-4", "1920008059", "1.2.250.1.213.1.1.1.45.2024.1.1"),
    "TLM-CR_2022.01.xml": ("85208-7", "1750803447", "1.3.6.1.4.1.19376.1.2.20.2022.1.1"),
}


def _self_presenting(payload: bytes) -> bytes:
    """The CI-SIS "autoprésentable" form: the ClinicalDocument inside an XSL stylesheet."""
    start = payload.index(b"<ClinicalDocument")
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
        b'<xsl:template match="/"><html><body>CR</body></html></xsl:template>\n'
        b'<xsl:variable name="doc">\n' + payload[start:] + b"\n</xsl:variable>\n"
        b"</xsl:stylesheet>\n"
    )


def test_cda_content_type_is_registered() -> None:
    assert "cda" in content_types()
    assert content_parser("cda") is parse_cda


def test_every_fixture_is_expected() -> None:
    assert sorted(p.name for p in CDA_FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_header_of_each_fixture(path: Path) -> None:
    code, custodian, doc_id = EXPECTED[path.name]
    content = parse_cda(path.read_bytes(), None)
    header = content.routable.header
    assert header.message_type == f"CDA^{code}"
    assert header.sending_facility == custodian
    assert header.sending_application == ""
    assert content.control_id == doc_id
    assert content.patient.ordering_key == f"279035121518989^{INS_OID}"
    assert content.patient.identifiers == ("279035121518989", "1234567890121")
    assert content.facts == {}


def test_xpath_get_with_hl7_prefix() -> None:
    doc = parse_cda(TSH.read_bytes(), None).routable
    assert doc.get("hl7:code/@code") == "11502-2"
    assert doc.get("hl7:recordTarget/hl7:patientRole/hl7:id/@root") == INS_OID
    assert doc.get("/hl7:ClinicalDocument/hl7:title") == "Compte rendu d'examens biologiques"
    assert doc.get("count(hl7:recordTarget/hl7:patientRole/hl7:id)") == "2"
    assert doc.get("boolean(hl7:custodian)") == "true"
    assert doc.get("hl7:confidentialityCode/@code") == "N"


@pytest.mark.parametrize(
    "path",
    ["hl7:nothing/@here", "PID-3", "PV1-2.1", "", "hl7:code[", "unknown:prefix", "0 div 0"],
)
def test_xpath_get_gives_empty_string_when_nothing(path: str) -> None:
    assert parse_cda(TSH.read_bytes(), None).routable.get(path) == ""


def test_get_all_gives_every_value() -> None:
    doc = parse_cda(TSH.read_bytes(), None).routable
    assert isinstance(doc, CdaDocument)
    ids = doc.get_all("hl7:recordTarget/hl7:patientRole/hl7:id/@extension")
    assert ids == ["279035121518989", "1234567890121"]


def test_routes_match_cda_by_message_type() -> None:
    doc = parse_cda(TSH.read_bytes(), None).routable
    assert when_matches(When.model_validate({"message_type": ["CDA"]}), doc)
    assert when_matches(When.model_validate({"message_type": ["CDA^*"]}), doc)
    assert not when_matches(When.model_validate({"message_type": ["ORU"]}), doc)
    assert when_matches(When.model_validate({"sending_facility": ["1120459876"]}), doc)


def test_self_presenting_form_reads_the_inner_document() -> None:
    wrapped = _self_presenting(TSH.read_bytes())
    plain = parse_cda(TSH.read_bytes(), None)
    inner = parse_cda(wrapped, None)
    assert inner.routable.header == plain.routable.header
    assert inner.patient == plain.patient
    assert inner.routable.get("hl7:code/@code") == "11502-2"


def test_author_organisation_when_no_custodian_id() -> None:
    text = TSH.read_text(encoding="utf-8")
    text = re.sub(
        r"<representedCustodianOrganization>.*?</representedCustodianOrganization>",
        "<representedCustodianOrganization/>",
        text,
        count=1,
        flags=re.S,
    )
    doc = read_cda(find_clinical_document(parse_xml(text.encode())))
    assert doc.header.sending_facility == "1120459876"


def test_document_id_with_extension_and_no_code() -> None:
    data = (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3" extension="DOC-9"/>'
        b'<recordTarget><patientRole><id root="1.2.3.4" nullFlavor="UNK"/>'
        b'<id root="1.9" extension="IPP7"/></patientRole></recordTarget></ClinicalDocument>'
    )
    content = parse_cda(data, None)
    assert content.control_id == "DOC-9^1.2.3"
    assert content.routable.header.message_type == "CDA"
    assert content.patient.ordering_key == "IPP7^1.9"
    assert content.patient.identifiers == ("IPP7",)


def test_not_a_cda_is_an_input_error() -> None:
    with pytest.raises(InputError, match="ClinicalDocument"):
        parse_cda(b"<Bundle xmlns='http://hl7.org/fhir'/>", None)


def test_hostile_payload_is_an_input_error() -> None:
    with pytest.raises(InputError, match="entities"):
        parse_cda(b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>', None)


def test_reprs_show_no_patient_identifier() -> None:
    content = parse_cda(TSH.read_bytes(), None)
    assert "279035121518989" not in repr(content)
    assert "279035121518989" not in repr(content.routable)
    assert "279035121518989" not in repr(content.patient)


# --- schema ---------------------------------------------------------------------------


def test_default_schema_path_is_the_shared_xsd() -> None:
    assert default_schema_path().resolve() == XSD.resolve()


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_every_fixture_is_valid_against_the_xsd(path: Path) -> None:
    schema = load_schema(XSD)
    issues = schema.validate(find_clinical_document(parse_xml(path.read_bytes())))
    assert issues == [], "\n".join(str(i) for i in issues)


def test_schema_compiled_once() -> None:
    assert load_schema(XSD) is load_schema(XSD)
    assert load_schema() is load_schema(XSD)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_invalid_values_give_errors_with_lines_and_no_values() -> None:
    text = TSH.read_text(encoding="utf-8")
    text = re.sub(r'<effectiveTime value="[^"]*"', '<effectiveTime value="DUPONT"', text, count=1)
    text = re.sub(r'<birthTime value="[^"]*"', '<birthTime value="JEANNE-1975"', text, count=1)
    issues = load_schema(XSD).validate(parse_xml(text.encode()))
    assert [i.line for i in issues] == [
        _line_of(text, 'value="DUPONT"'),
        _line_of(text, 'value="JEANNE-1975"'),
    ]
    assert "effectiveTime" in issues[0].message and "birthTime" in issues[1].message
    assert all("DUPONT" not in i.message and "JEANNE" not in i.message for i in issues)
    assert all("(value withheld)" in i.message for i in issues)
    assert str(issues[0]).startswith(f"line {issues[0].line}: ")


def test_unexpected_element_is_reported_at_its_line() -> None:
    text = TSH.read_text(encoding="utf-8").replace("<title>", "<bogus/><title>", 1)
    issues = load_schema(XSD).validate(parse_xml(text.encode()))
    assert issues[0].line == _line_of(text, "<bogus/>")
    assert "bogus" in issues[0].message and "not expected" in issues[0].message


def test_at_most_ten_errors_reported() -> None:
    text = TSH.read_text(encoding="utf-8")
    text = re.sub(r'(<(?:effectiveTime|time) value=")[^"]*"', r'\1x"', text)
    text = text.replace('moodCode="EVN"', 'moodCode="XX"')  # 11 errors or more
    issues = load_schema(XSD).validate(parse_xml(text.encode()))
    assert len(issues) == 10


def test_self_presenting_document_validates() -> None:
    root = parse_xml(_self_presenting(TSH.read_bytes()))
    assert load_schema(XSD).validate(find_clinical_document(root)) == []
