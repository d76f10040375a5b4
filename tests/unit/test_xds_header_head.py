"""eai.xds.read_header builds the tree of a CDA up to its structured body (the header is
all it reads) and checks the rest without a tree: the same header, or the same refusal,
as the whole document parsed, for every fixture, for bodies the hardened parse refuses,
and for the forms where the cut cannot be made (prefixes, decoys in comments or in the
header, a header that is not well-formed), which are parsed whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from eai import hl7
from eai.errors import PermanentDeliveryError
from eai.xds import _header, read_header
from eai.xml import parse_xml
from tests._paths import CDA, HL7V2

CDA_FILES = sorted(CDA.glob("*.xml"))


def documents() -> list[tuple[str, bytes]]:
    found = [(p.name, p.read_bytes()) for p in CDA_FILES]
    for path in sorted(HL7V2.glob("*")):
        try:
            embedded = hl7.embedded_documents(hl7.parse(path.read_bytes()))
        except Exception:  # noqa: BLE001 - fixtures of refusals: not what is tested here
            continue
        found += [(f"{path.name}#{d.obx}", d.data) for d in embedded]
    return found


def outcome(data: bytes) -> object:
    try:
        return read_header(data)
    except PermanentDeliveryError as exc:
        return str(exc)


def whole(data: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patched:
        patched.setattr(_header, "_parse_head", parse_xml)
        return outcome(data)


def _id(value: object) -> str:
    return value if isinstance(value, str) else ""


@pytest.mark.parametrize(("name", "data"), documents(), ids=_id)
def test_every_fixture_reads_as_when_parsed_whole(
    name: str, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert outcome(data) == whole(data, monkeypatch)


def structured() -> bytes:
    return next(d for _, d in documents() if b"<structuredBody" in d and b"<title" in d)


@pytest.mark.parametrize(
    "body",
    [
        b"<structuredBody><not-closed></structuredBody></component></ClinicalDocument>",
        b"<structuredBody><x:y/></structuredBody></component></ClinicalDocument>",
        b"<structuredBody>&undeclared;</structuredBody></component></ClinicalDocument>",
        b'<structuredBody><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/x"/>'
        b"</structuredBody></component></ClinicalDocument>",
        b'<structuredBody><i:include xmlns:i="http://www.w3.org/2001/&#88;Include" href="/x"/>'
        b"</structuredBody></component></ClinicalDocument>",
        b"<structuredBody/></component></ClinicalDocument><after/>",
    ],
)
def test_a_body_refused_by_the_hardened_parse_is_refused_as_before(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body is not built into a tree but is still checked (eai.xml.check_xml)."""
    data = structured()
    changed = data[: data.index(b"<structuredBody")] + body
    refused = outcome(changed)
    assert isinstance(refused, str) and "not a readable CDA" in refused
    assert refused == whole(changed, monkeypatch)


@pytest.mark.parametrize(
    "decoy",
    [
        b"<!-- <structuredBody> -->",
        b"<?pi <structuredBody?>",
        b"<![CDATA[<structuredBody>]]>",
        b'<ext xmlns="urn:x"><structuredBody/></ext>',
        b'<ext xmlns="urn:x"><component><structuredBody/></component></ext>',
    ],
)
def test_a_decoy_before_the_body_does_not_cut_the_header(
    decoy: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = structured()
    at = data.index(b"<title")
    changed = data[:at] + decoy + data[at:]
    if b"CDATA" in decoy or b"?pi" in decoy:  # where text may be: inside the header's title
        at = data.index(b">", at) + 1
        changed = data[:at] + decoy + data[at:]
    assert outcome(changed) == whole(changed, monkeypatch)
    assert outcome(changed) == outcome(data) or b"CDATA" in decoy or b"?pi" in decoy


def test_a_second_component_of_the_document_ends_its_header() -> None:
    """CDA R2 gives a ClinicalDocument one component, its last child: one put before the
    header's end (not valid CDA) ends the header there, and what follows is not read."""
    data = structured()
    at = data.index(b"<recordTarget")
    early = data[:at] + b"<component><structuredBody/></component>" + data[at:]
    with pytest.raises(PermanentDeliveryError, match="recordTarget"):
        read_header(early)


def test_a_prefixed_document_is_parsed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    data = structured()
    prefixed = data.replace(b'xmlns="urn:hl7-org:v3"', b'xmlns:cda="urn:hl7-org:v3"', 1)
    assert outcome(prefixed) == whole(prefixed, monkeypatch)


def test_a_header_that_is_not_well_formed_is_refused_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = structured()
    at = data.index(b"<title")
    broken = data[:at] + b"<unclosed>" + data[at:]
    refused = outcome(broken)
    assert isinstance(refused, str) and "not a readable CDA" in refused
    assert refused == whole(broken, monkeypatch)


def test_paths_exist() -> None:
    assert CDA_FILES and isinstance(HL7V2, Path)
