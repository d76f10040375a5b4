"""CI-SIS ED base64: what is unambiguous is decoded and said, the rest refused; a refused
document's routing facts route nothing (issue 15, point 1)."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eai import hl7
from eai._hl7_content import parse_hl7v2
from eai.config import load_config_text
from eai.errors import InputError
from eai.pipeline import plan_message
from eai.routing import evaluate, reads_facts
from eai.store import Cipher, ClaimedMessage
from tests._paths import HL7V2

ORU = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
CDA = hl7.embedded_documents(hl7.parse(ORU))[0].data
ENCODED = base64.b64encode(CDA).decode("ascii")
CIPHER = Cipher(os.urandom(32))


def _oru_with(data: str) -> bytes:
    """The national ORU with OBX[1]-5.5 (the CR-BIO's base64) replaced by ``data``."""
    text = ORU.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r")
    segs = text.split("\r")
    for i, seg in enumerate(segs):
        if seg.startswith("OBX|1|ED|"):
            fields = seg.split("|")
            components = fields[5].split("^")
            components[4] = data
            fields[5] = "^".join(components)
            segs[i] = "|".join(fields)
    return "\r".join(segs).encode("utf-8")


def _mime_lines(data: str, width: int = 76) -> str:
    """``data`` cut in MIME lines, each break written as HL7's ``\\.br\\`` escape."""
    return "\\.br\\".join(data[i : i + width] for i in range(0, len(data), width))


UNPADDED = _oru_with(ENCODED.rstrip("="))
assert ENCODED.endswith("==") and len(ENCODED.rstrip("=")) % 4 == 2  # the defect under test


# --- the decoder ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data", "repairs"),
    [
        ("UUJD", b"QBC", ()),
        ("UUI=", b"QB", ()),
        ("UUI", b"QB", ("padding",)),
        ("UQ", b"Q", ("padding",)),
        ("UQ=", b"Q", ("padding",)),
        ("UU JD\nUUI=", b"QBCQB", ("spaces",)),
        ("UU\r\nJD\tUUI", b"QBCQB", ("spaces", "padding")),
        ("", b"", ()),
    ],
)
def test_unambiguous_defects_are_decoded_and_named(
    text: str, data: bytes, repairs: tuple[str, ...]
) -> None:
    assert hl7.decode_base64(text) == (data, repairs)


@pytest.mark.parametrize(
    "text",
    [
        "not*base64",  # outside the alphabet
        "UUJD-_",  # the URL-safe alphabet is not the ED's
        "UU=JD",  # padding in the middle
        "UUJD=",  # more padding than the length calls for
        "UUI==",
        "UUJDU",  # 4n+1 characters: no padding completes it (truncated)
        "UUJDU===",
        "UUJDé",
    ],
)
def test_ambiguous_or_foreign_data_is_not_base64(text: str) -> None:
    with pytest.raises(ValueError):
        hl7.decode_base64(text)


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=80), st.booleans())
def test_any_bytes_survive_lost_padding_and_line_breaks(
    data: bytes, width: int, crlf: bool
) -> None:
    encoded = base64.b64encode(data).decode("ascii").rstrip("=")
    cut = ("\r\n" if crlf else "\n").join(
        encoded[i : i + width] for i in range(0, len(encoded), width)
    )
    assert hl7.decode_base64(cut)[0] == data


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n\r\t-_*é"


def _stdlib_or_refusal(text: str) -> bytes | None:
    """The standard library's ``validate=True`` reading, where the padding is as the
    length calls for: it also takes ``0000=`` (a '=' more than a full quantum needs),
    which ``test_ambiguous_or_foreign_data_is_not_base64`` refuses on purpose."""
    body = text.rstrip("=")
    if "=" in body or len(text) - len(body) > -len(body) % 4:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


@given(st.text(alphabet=_B64_CHARS, max_size=40))
def test_well_formed_text_decodes_as_the_standard_library_would(text: str) -> None:
    """The decoder (pybase64, for speed) takes and gives what the standard library's
    ``validate=True`` decoder does wherever the latter accepts the text untouched; any other
    text is repaired (and said) or refused, never decoded silently otherwise."""
    expected = _stdlib_or_refusal(text)
    try:
        data, repairs = hl7.decode_base64(text)
    except ValueError:
        assert expected is None
        return
    if expected is not None:
        assert (data, repairs) == (expected, ())
    else:
        assert repairs  # decoded only after a named repair


@given(st.binary(max_size=3000))
def test_any_bytes_round_trip(data: bytes) -> None:
    assert hl7.decode_base64(base64.b64encode(data).decode("ascii")) == (data, ())


# --- the embedded document -----------------------------------------------------------------


def test_a_cr_bio_without_its_final_padding_is_decoded_with_a_warning() -> None:
    (doc,) = hl7.embedded_documents(hl7.parse(UNPADDED))
    assert doc.data == CDA
    assert doc.repairs == (
        "OBX[1]-5.5: base64 without its final '=' padding, decoded as if padded",
    )
    check = hl7.check_documents(hl7.parse(UNPADDED))
    assert check.problem == "" and check.warnings == doc.repairs


def test_mime_lines_are_decoded_and_said() -> None:
    message = hl7.parse(_oru_with(_mime_lines(ENCODED.rstrip("="))))
    (doc,) = hl7.embedded_documents(message)
    assert doc.data == CDA
    assert [w.split(": ", 1)[1] for w in doc.repairs] == [
        "base64 split by line breaks or spaces, decoded without them",
        "base64 without its final '=' padding, decoded as if padded",
    ]


def test_a_well_formed_document_has_no_warning() -> None:
    assert hl7.check_documents(hl7.parse(ORU)) == hl7.DocumentCheck()
    assert parse_hl7v2(ORU, None).warnings == ()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("not*base64", "OBX[1]-5.5: the ED data is not valid base64"),
        (ENCODED[:-3], "OBX[1]-5.5: the ED data is not valid base64"),  # truncated: 4n+1
        (
            base64.b64encode(b"<html><body>CR</body></html>").decode(),
            "OBX[1]-5.5: the ED data (OBX-5.3 XML) does not decode to a CDA document",
        ),
        (
            base64.b64encode(b"<ClinicalDocument").decode(),  # XML that does not parse
            "OBX[1]-5.5: the ED data (OBX-5.3 XML) does not decode to a CDA document",
        ),
        (
            base64.b64encode(b"\x00\x01\x02binary").decode(),
            "OBX[1]-5.5: the ED data (OBX-5.3 XML) does not decode to an XML document",
        ),
    ],
)
def test_data_that_is_not_base64_or_not_a_cda_is_refused(data: str, problem: str) -> None:
    parsed = parse_hl7v2(_oru_with(data), None)
    assert parsed.problem == problem
    assert parsed.facts["DESTDMP"] == "Y"  # still computed, but unusable (below)


def test_a_text_placeholder_is_a_document_without_cda_not_a_refusal() -> None:
    placeholder = base64.b64encode("Compte rendu à venir".encode()).decode()
    assert parse_hl7v2(_oru_with(placeholder), None).problem == ""


def test_truly_invalid_base64_is_still_refused_by_the_decoder() -> None:
    with pytest.raises(InputError) as info:
        hl7.embedded_documents(hl7.parse(_oru_with("not*base64")))
    assert info.value.reason == "OBX[1]-5.5: the ED data is not valid base64"


def test_the_cisis_mapping_maps_the_unpadded_report() -> None:
    import mappings

    bundle = mappings.convert(UNPADDED, "hl7v2", "cisis-oru-mdm")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert "DiagnosticReport" in kinds and kinds.count("Observation") >= 40


# --- routing on the facts of a refused document --------------------------------------------

ROUTES = """
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: dmp, type: mllp, host: 127.0.0.1, port: 1}
  - {name: mss, type: mllp, host: 127.0.0.1, port: 2}
  - {name: mss-unless, type: mllp, host: 127.0.0.1, port: 3}
  - {name: archive, type: mllp, host: 127.0.0.1, port: 4}
routes:
  - name: to-dmp
    from: [in]
    when: {all: [{message_type: [ORU]}, {fact: DESTDMP, equals: "Y"}]}
    to: [dmp]
  - name: to-patient
    from: [in]
    when: {fact: DESTMSSANTEPAT, equals: "Y"}
    to: [mss]
  - name: unless-refused-by-flag
    from: [in]
    when: {not: {fact: DESTMSSANTEPS, equals: "N"}}
    to: [mss-unless]
"""
ARCHIVE = """
  - {name: archive-all, from: [in], when: {message_type: [ORU]}, to: [archive]}
"""


def _plan(payload: bytes, routes: str = ROUTES) -> Any:
    config = load_config_text(routes, "routes.yaml", env={})
    claimed = ClaimedMessage(1, "in", datetime(2026, 1, 1), "hl7v2", "", "", CIPHER.seal(payload))
    return plan_message(config, CIPHER, claimed)


def test_an_unpadded_report_is_routed_on_its_facts_with_a_warning() -> None:
    plan = _plan(UNPADDED)
    assert plan.status == "processed" and plan.reason == ""
    assert [d.destination for d in plan.deliveries] == ["dmp", "mss", "mss-unless"]
    assert plan.warnings == (
        "OBX[1]-5.5: base64 without its final '=' padding, decoded as if padded",
    )


def test_a_refused_document_is_routed_on_none_of_its_facts() -> None:
    plan = _plan(_oru_with("not*base64"))
    assert plan.status == "rejected" and plan.deliveries == ()
    assert plan.reason == "OBX[1]-5.5: the ED data is not valid base64"


def test_a_refused_document_still_takes_routes_that_read_no_fact() -> None:
    plan = _plan(_oru_with("not*base64"), ROUTES + ARCHIVE)
    assert plan.status == "processed"
    assert [d.destination for d in plan.deliveries] == ["archive"]
    assert plan.reason == "OBX[1]-5.5: the ED data is not valid base64"  # an "invalid" event


def test_reads_facts_looks_under_every_combinator() -> None:
    config = load_config_text(ROUTES + ARCHIVE, "routes.yaml", env={})
    found = {r.name: r.when is not None and reads_facts(r.when) for r in config.routes}
    assert found == {
        "to-dmp": True,
        "to-patient": True,
        "unless-refused-by-flag": True,
        "archive-all": False,
    }
    message = hl7.parse(ORU)
    facts = parse_hl7v2(ORU, None).facts
    usable = evaluate(config.routes, "in", message, facts)
    assert usable.destinations == ("dmp", "mss", "mss-unless", "archive")
    refused = evaluate(config.routes, "in", message, facts, facts_usable=False)
    assert refused.destinations == ("archive",)


_PROBLEMS = {
    "",
    "OBX[1]-5.5: the ED data is not valid base64",
    "OBX[1]-5.5: the ED data (OBX-5.3 XML) does not decode to a CDA document",
    "OBX[1]-5.5: the ED data (OBX-5.3 XML) does not decode to an XML document",
}


@given(
    st.one_of(
        # Lone surrogates (Cs) cannot be sent: UTF-8 has no bytes for them.
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="|^~\\&\r\n"),
            max_size=80,
        ),
        st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode().rstrip("=")),
        st.sampled_from(["<a/>", "<ClinicalDocument xmlns='urn:hl7-org:v3'/>", "<!DOCTYPE x>"]).map(
            lambda x: base64.b64encode(x.encode()).decode()
        ),
    )
)
def test_any_ed_data_gets_a_clear_answer(data: str) -> None:
    parsed = parse_hl7v2(_oru_with(data), None)  # never raises for the ED's sake
    assert parsed.problem in _PROBLEMS
