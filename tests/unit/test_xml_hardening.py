"""eai.xml.parse_xml: XXE, entity expansion, external DTDs and XInclude are refused."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eai.errors import InputError
from eai.xml import parse_xml
from tests._paths import CDA

CDA_FILES = sorted(CDA.glob("*.xml"))


def _refused(data: bytes) -> str:
    with pytest.raises(InputError) as info:
        parse_xml(data)
    return info.value.reason


def test_cda_fixtures_exist() -> None:
    assert len(CDA_FILES) >= 6


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_every_cda_fixture_parses(path: Path) -> None:
    root = parse_xml(path.read_bytes())
    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"


def test_billion_laughs_refused_at_once() -> None:
    decls = "".join(
        f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">{decls}]><lolz>&lol9;</lolz>'
    started = time.monotonic()
    reason = _refused(data.encode())
    assert time.monotonic() - started < 1.0
    assert "entity" in reason.lower()


def test_small_entity_expansion_refused_too() -> None:
    data = b'<!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;">]><a>&y;</a>'
    assert "declares entities" in _refused(data)


def test_quadratic_blowup_refused() -> None:
    data = b'<!DOCTYPE q [<!ENTITY a "' + b"a" * 100_000 + b'">]><q>' + b"&a;" * 10_000 + b"</q>"
    assert "entity" in _refused(data).lower()


def test_undeclared_entity_refused() -> None:
    assert "entity" in _refused(b"<d>&nope;</d>").lower()


def test_element_declarations_refused() -> None:
    assert "DTD" in _refused(b"<!DOCTYPE d [<!ELEMENT d ANY>]><d/>")


def test_bare_doctype_is_harmless_and_accepted() -> None:
    assert parse_xml(b"<!DOCTYPE d><d>x</d>").text == "x"


def test_malformed_xml_gives_reason_and_line() -> None:
    reason = _refused(b"<a>\n<b>\n</a>")
    assert reason.startswith("XML is not well-formed")
    assert "(line 3)" in reason


@pytest.mark.parametrize("data", [b"", b"   \n", b"not xml at all"])
def test_empty_or_text_refused(data: bytes) -> None:
    _refused(data)


def test_excessive_depth_refused() -> None:
    assert "nested" in _refused(b"<a>" * 300 + b"</a>" * 300)


def test_parser_is_safe_across_threads() -> None:
    payloads = [p.read_bytes() for p in CDA_FILES]
    with ThreadPoolExecutor(4) as pool:
        tags = list(pool.map(lambda d: parse_xml(d).tag, payloads * 4))
    assert set(tags) == {"{urn:hl7-org:v3}ClinicalDocument"}
