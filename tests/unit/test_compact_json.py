"""``eai.compact_json.dumps`` writes the bytes of ``json.dumps(ensure_ascii=False,
separators=(",", ":"))`` in UTF-8, or raises what it raises: the outbox's Bundles and the
FHIR destination's transactions did not change when orjson began writing them."""

from __future__ import annotations

import enum
import json
import math
import random
import struct
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

import mappings
from eai.compact_json import dumps
from tests._paths import CDA, HL7V2


def reference(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_floats_of_every_exponent_are_written_as_json_writes_them() -> None:
    rng = random.Random(20)
    values: list[float] = [0.0, -0.0, 1e-5, 1e-7, 2.5e-9, 1e-10, 1e15, 1e16, 5e-324, 1.7e308]
    for exponent in range(-320, 309):
        values += [rng.random() * 10.0**exponent for _ in range(20)]
    values += [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20_000)
    ]
    values = [v for v in values if math.isfinite(v)]
    for value in values:
        for shape in (value, -value, [value], {"valueQuantity": {"value": value, "unit": "g"}}):
            assert dumps(shape) == reference(shape), repr(value)


def test_nan_infinity_none_and_big_integers_as_json_writes_them() -> None:
    for value in (math.nan, math.inf, -math.inf, None, 2**64, -(2**70), 2**63 - 1):
        assert dumps({"v": [value, 1]}) == reference({"v": [value, 1]})


def test_text_as_json_writes_it() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    assert dumps({"text": text}) == reference({"text": text})
    for trap in ("0.00001", "1e-7,", "null", "e-5]"):
        assert dumps({"x": trap, trap: [trap]}) == reference({"x": trap, trap: [trap]})


class Level(enum.IntEnum):
    HIGH = 2


class Code(enum.StrEnum):
    FINAL = "final"


def test_subclasses_and_other_keys_as_json_writes_them() -> None:
    for value in ({1: "a", 2.5: "b", False: "c", None: "d"}, [Level.HIGH, Code.FINAL], (1, "2")):
        assert dumps(value) == reference(value)


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [Point(1), date(2024, 1, 1), {1j: 2}, object()])
def test_what_json_refuses_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        reference(value)
    with pytest.raises(TypeError):
        dumps(value)


def test_a_lone_surrogate_fails_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        reference({"x": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        dumps({"x": "\ud800"})


def test_the_mapped_bundles_are_byte_identical() -> None:
    oru = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()
    for bundle in (
        mappings.convert(oru, "hl7v2", "cisis-oru-mdm"),
        mappings.convert((CDA / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes(), "cda", "crbio"),
        mappings.convert((HL7V2 / "pamfr_a01_admission.er7").read_bytes(), "hl7v2", "pamfr-adt"),
    ):
        assert dumps(bundle) == reference(bundle)


@pytest.mark.parametrize("small", [1e-5, 2.5e-7, math.nan])
def test_the_attachment_left_out_of_the_scans_hides_no_number(small: float) -> None:
    data = "bnVsbA==null0.0000e-5,"  # text that would look like the values checked for
    for value in (
        {"a": small, "content": [{"attachment": {"data": data}}]},
        {"content": [{"attachment": {"data": data}}], "z": [small]},
        {"content": [{"attachment": {"data": 'with "quotes" \\ escaped'}}], "z": small},
        {"metadata": "x", "data": data, "more": {"data": data, "v": small}},
        {"data": 'x"data":"y', "v": small},
    ):
        assert dumps(value) == reference(value)
        assert dumps({**value, "fine": 0.5}) == reference({**value, "fine": 0.5})


def test_only_the_attachment_text_is_left_out_of_the_scans() -> None:
    import orjson

    from eai.compact_json import _may_differ

    assert not _may_differ(orjson.dumps({"data": "null0.0000", "v": 0.5}))
    assert _may_differ(orjson.dumps({"data": "x", "note": "null"}))
    assert _may_differ(orjson.dumps({"data": "a\\null", "v": 0.5}))  # an escape: all scanned
    assert _may_differ(orjson.dumps({"data": "x", "v": 1e-7}))
