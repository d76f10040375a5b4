"""Check the coded metadata of a document entry against the DMP's value sets, as its registry does.

Touches: nothing.

The stand-in's own copy (independent of :mod:`connectors.dmp`, so that a wrong table in the
client cannot pass on both sides) of what the ANS publishes for the codes the national
CI-SIS fixtures use:

- classCode in ``JDV_J57-ClassCode-DMP`` (TRE_A03 1.2.250.1.213.1.1.4.1; the IHE DSG
  signature's ``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1`` under ``URN``), and consistent with
  the typeCode per ``ASS_X04-CorrespondanceType-Classe-CISIS`` for the types below;
- typeCode in LOINC (2.16.840.1.113883.6.1), TRE_A05 (1.2.250.1.213.1.1.4.12) or ASTM
  (``E1762``, the signature);
- confidentialityCode: HL7 Confidentiality (2.16.840.1.113883.5.25) ``N``/``R``/``V`` or
  TRE_A07 (1.2.250.1.213.1.1.4.13) ``MASQUE_PS``/``INVISIBLE_PATIENT``/
  ``INVISIBLE_REPRESENTANTS_LEGAUX``;
- healthcareFacilityTypeCode in TRE_R02-SecteurActivite (1.2.250.1.71.4.2.4, ``SAnn``);
  practiceSettingCode in TRE_A00 cadre d'exercice (1.2.250.1.213.1.1.4.9);
- formatCode under the IHE (1.3.6.1.4.1.19376.1.2.3) or CI-SIS (1.2.250.1.213.1.1.4.2.282)
  format code systems, or ``URN`` (the signature's xmldsig format);
- the submission set's contentTypeCode under 1.2.250.1.213.2.2.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

__all__ = ["check_content_type", "check_entry_codes"]

_NS = {"rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"}
_SCHEMES = {
    "classCode": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "typeCode": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "confidentialityCode": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "formatCode": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "healthcareFacilityTypeCode": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practiceSettingCode": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
}
_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
_DSG_CLASS = ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN")
_J57 = frozenset({"10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"})
_X04 = {
    # ASS_X04 rows for the document types of the national fixtures (and the signature).
    "11502-2": "10",
    "18748-4": "31",
    "34794-8": "10",
    "85208-7": "10",
    "E1762": _DSG_CLASS[0],
}
_TYPE_SYSTEMS = frozenset({"2.16.840.1.113883.6.1", "1.2.250.1.213.1.1.4.12", "ASTM"})
_CONFIDENTIALITY = {
    "2.16.840.1.113883.5.25": frozenset({"N", "R", "V"}),
    "1.2.250.1.213.1.1.4.13": frozenset(
        {"MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"}
    ),
}
_FORMAT_SYSTEMS = frozenset({"1.3.6.1.4.1.19376.1.2.3", "1.2.250.1.213.1.1.4.2.282", "URN"})
_SECTOR = re.compile(r"SA\d{2}")


def _codes(owner: etree._Element, scheme: str) -> Iterator[tuple[str, str]]:
    for c in owner.iterfind(f"rim:Classification[@classificationScheme='{scheme}']", _NS):
        systems = c.xpath(
            "rim:Slot[@name='codingScheme']/rim:ValueList/rim:Value/text()", namespaces=_NS
        )
        yield str(c.get("nodeRepresentation", "")), str(systems[0]) if systems else ""


def check_entry_codes(entry: etree._Element, errors: list[tuple[str, str]]) -> None:
    """Note each coded value of the document entry ``entry`` outside the DMP's value sets."""
    entry_id = str(entry.get("id"))

    def refuse(what: str) -> None:
        errors.append(("XDSRegistryMetadataError", f"{entry_id}: {what}"))

    classes = list(_codes(entry, _SCHEMES["classCode"]))
    types = list(_codes(entry, _SCHEMES["typeCode"]))
    for code, system in classes:
        if (code, system) != _DSG_CLASS and (system != "1.2.250.1.213.1.1.4.1" or code not in _J57):
            refuse(f"classCode {code}@{system} is not in JDV_J57-ClassCode-DMP")
    for code, system in types:
        if system not in _TYPE_SYSTEMS:
            refuse(f"typeCode {code}@{system}: not a LOINC, TRE_A05 or ASTM code")
        expected = _X04.get(code)
        if expected is not None and classes and classes[0][0] != expected:
            refuse(
                f"classCode {classes[0][0]} does not go with typeCode {code} (ASS_X04: {expected})"
            )
    for code, system in _codes(entry, _SCHEMES["confidentialityCode"]):
        if code not in _CONFIDENTIALITY.get(system, ()):
            refuse(f"confidentialityCode {code}@{system} is not a DMP confidentiality code")
    for code, system in _codes(entry, _SCHEMES["formatCode"]):
        if system not in _FORMAT_SYSTEMS:
            refuse(f"formatCode {code}@{system}: not an IHE or CI-SIS format code")
    for code, system in _codes(entry, _SCHEMES["healthcareFacilityTypeCode"]):
        if system != "1.2.250.1.71.4.2.4" or not _SECTOR.fullmatch(code):
            refuse(f"healthcareFacilityTypeCode {code}@{system} is not a TRE_R02 sector")
    for code, system in _codes(entry, _SCHEMES["practiceSettingCode"]):
        if system != "1.2.250.1.213.1.1.4.9" or not code:
            refuse(f"practiceSettingCode {code}@{system} is not under 1.2.250.1.213.1.1.4.9")


def check_content_type(submission_set: etree._Element, errors: list[tuple[str, str]]) -> None:
    """Note a submission set contentTypeCode outside its code system (1.2.250.1.213.2.2)."""
    for code, system in _codes(submission_set, _CONTENT_TYPE):
        if system != "1.2.250.1.213.2.2" or not code:
            errors.append(
                (
                    "XDSRegistryMetadataError",
                    f"submission set: contentTypeCode {code}@{system} not under 1.2.250.1.213.2.2",
                )
            )
