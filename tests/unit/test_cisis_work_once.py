"""The ``cisis`` mapping source does its costly work once per message (issue 20's
benchmark): the embedded CDA base64-decoded once, parsed once, its resources copied
without sharing anything with the inner Bundle; the result is what it was. The FHIR
checks' fast passes still let the naming walks report what they reported."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pybase64
import pytest
from lxml import etree

import mappings
from eai import hl7
from mappings._validate import Level, bundle_problems
from tests._cisis import MDM, ORU, build, segments


def _counting(calls: list[str], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return fn(*args, **kwargs)

    return counted


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every XML parse (``lxml.etree.fromstring``: what :func:`eai.xml.parse_xml` calls)
    and every base64 decode made from now on (:func:`eai.hl7.decode_base64` decodes with
    pybase64)."""
    calls: list[str] = []
    monkeypatch.setattr(etree, "fromstring", _counting(calls, "parse", etree.fromstring))
    monkeypatch.setattr(pybase64, "b64decode", _counting(calls, "b64decode", pybase64.b64decode))
    return calls


def test_the_national_oru_has_its_cda_decoded_once_and_parsed_once(parses: list[str]) -> None:
    message = hl7.parse(ORU)
    bundle = mappings.convert(ORU, "hl7v2", "cisis-oru-mdm", parsed=message, validation="light")
    assert len(bundle["entry"]) == 63
    assert parses.count("b64decode") == 1
    assert parses.count("parse") == 1


def test_the_content_parser_and_the_mapping_share_one_decode_and_one_parse(
    parses: list[str],
) -> None:
    # the pipeline: the hl7v2 content parser checks the document (and reads its patient),
    # then the route's mapping reads the same message
    from eai.content import content_parser

    parser = content_parser("hl7v2")
    assert parser is not None
    content = parser(ORU, None)
    assert content.problem == "" and content.document_patient is not None
    assert parses.count("b64decode") == 1 and parses.count("parse") == 1
    bundle = mappings.convert(
        ORU, "hl7v2", "cisis-oru-mdm", parsed=content.routable, validation="light"
    )
    assert parses.count("b64decode") == 1 and parses.count("parse") == 1
    assert bundle == mappings.convert(ORU, "hl7v2", "cisis-oru-mdm", validation="light")
    assert parses.count("b64decode") == 2 and parses.count("parse") == 2  # a new message


def test_a_document_without_cda_is_still_taken_as_before() -> None:
    # the national MDM carries a text placeholder: not a CDA, not refused
    bundle = mappings.convert(MDM, "hl7v2", "cisis-oru-mdm")
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert "DocumentReference" in kinds and "Patient" in kinds


def test_a_later_document_obx_that_is_not_xml_is_refused_as_before() -> None:
    segs = segments(ORU)
    obx = next(s for s in segs if s.startswith("OBX|") and "|ED|" in s)
    text = base64.b64encode(b"just a note").decode()
    parts = obx.split("|")
    value = parts[5].split("^")
    value[4] = text
    parts[5] = "^".join(value)
    payload = build([*segs, "|".join(parts)])
    with pytest.raises(Exception, match=r"OBX\[\d+\]-5.5: the ED data .* XML document"):
        mappings.convert(payload, "hl7v2", "cisis-oru-mdm")


def test_the_copied_resources_share_nothing_with_the_inner_bundle() -> None:
    message = hl7.parse(ORU)
    source = mappings.load_mapping("cisis-oru-mdm").source
    document = source.from_routable(message)
    assert document is not None
    inner = {id(v) for v in _containers(document.bundle)}
    outer = mappings.load_mapping("cisis-oru-mdm").run(document)
    assert not inner & {id(v) for v in _containers(outer)}


def _containers(node: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _containers(value)
    elif isinstance(node, list):
        found.append(node)
        for value in node:
            found += _containers(value)
    return found


@pytest.mark.parametrize("level", ["light", "cached", "full"])
def test_the_checks_still_name_dangling_references_and_bad_systems(level: Level) -> None:
    # the fast passes only decide whether the naming walks run
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "1.2.250.1.213.1.1.5.130", "code": "x"}]},
        "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"},
        "identifier": [{"system": "urn:oid:1.2.250.01", "value": "1"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:uuid:{'1' * 8}-1111-1111-1111-{'1' * 12}", "resource": observation}
        ],
    }
    assert bundle_problems(bundle, level) == [
        "Observation.subject.reference: reference to no entry of the Bundle",
        "Observation.code.coding[0].system: not an absolute URI (a bare OID is written "
        "urn:oid:<OID>)",
        "Observation.identifier[0].system: not a valid OID after urn:oid:",
    ]
