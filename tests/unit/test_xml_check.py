"""eai.xml.check_xml: refuses exactly what parse_xml refuses, with its reason, without
building the tree (libxml2 with a target that builds nothing; what it cannot see, a
DOCTYPE or a namespace that may be XInclude's, goes to parse_xml itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eai.errors import InputError
from eai.xml import check_xml, parse_xml
from tests._paths import CDA

CDA_FILES = sorted(CDA.glob("*.xml"))

REFUSED = [
    b"",
    b"  \n",
    b"not xml at all",
    b"<a>\n<b>\n</a>",
    b"<a>&nope;</a>",
    b"<a><x:b/></a>",
    b'<a b="1" b="2"/>',
    b"<a>" * 300 + b"</a>" * 300,
    b"<a/><b/>",
    b'<!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;">]><a>&y;</a>',
    b'<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>',
    b"<!DOCTYPE d [<!ELEMENT d ANY>]><d/>",
    b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></a>',
    b'<a><b xmlns="http://www.w3.org/2003/XInclude"/></a>',
    b'<a><i:include xmlns:i="http://www.w3.org/2001/&#88;Include" href="/x"/></a>',
    b"<a><i:include xmlns:i = 'http://www.w3.org/2001/X&#x49;nclude'/></a>",
    b"\xff\xfe<\x00a\x00>\x00",
]


def reason(data: bytes, check: object) -> str:
    with pytest.raises(InputError) as refused:
        check(data)  # type: ignore[operator]
    return refused.value.reason


@pytest.mark.parametrize("data", REFUSED)
def test_what_parse_xml_refuses_is_refused_with_its_reason(data: bytes) -> None:
    assert reason(data, check_xml) == reason(data, parse_xml)


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_every_cda_fixture_passes(path: Path) -> None:
    check_xml(path.read_bytes())


@pytest.mark.parametrize(
    "data",
    [b"<a/>", b"<!DOCTYPE d><d>x</d>", b'<a xmlns="urn:x" xmlns:b="urn:y">&#233;<b:c/></a>'],
)
def test_what_parse_xml_takes_passes(data: bytes) -> None:
    parse_xml(data)
    check_xml(data)
