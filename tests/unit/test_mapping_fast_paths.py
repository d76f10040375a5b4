"""The mapping engine's fast paths give what the slower calls they replace give: the
fullUrl's uuid5, ``find`` of a plain tag, the CDA timestamps."""

from __future__ import annotations

import random
import string
import uuid

from lxml import etree

from eai.xml import parse_xml
from mappings._context import _NAMESPACE, _uuid5
from mappings.functions import cda_types
from mappings.functions.cda_types import first_child, ts_datetime
from tests._paths import CDA


def test_uuid5_is_the_standard_one() -> None:
    rng = random.Random(5)
    alphabet = string.printable + "éà€😀\u0000"
    names = ["", "crbio|0a1b|lab_result|0"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))) for _ in range(5000)]
    for name in names:
        assert _uuid5(name) == str(uuid.uuid5(_NAMESPACE, name))


def test_first_child_is_find_of_a_plain_tag() -> None:
    root = parse_xml((CDA / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes())
    tags = {e.tag for e in root.iter() if isinstance(e.tag, str)}
    checked = 0
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for tag in tags:
            assert first_child(element, tag) is element.find(tag)
            checked += 1
    assert checked > 10_000
    comment = etree.fromstring("<a xmlns='urn:hl7-org:v3'><!-- x --><b/><b id='2'/></a>")
    assert first_child(comment, "{urn:hl7-org:v3}b") is comment.find("{urn:hl7-org:v3}b")


def test_remembered_timestamps_are_converted_as_before() -> None:
    values = [
        "20240101",
        "202401011030",
        "20240101103000+0200",
        "20240630103000.123",
        "20241027023000",
        "2024",
        "nonsense",
        " 20240101103000 ",
        "20241301103000",
    ]
    for value in values * 2:
        assert ts_datetime(value) == cda_types._ts_datetime.__wrapped__(value)
    assert ts_datetime("") == "" and ts_datetime(None) == ""
