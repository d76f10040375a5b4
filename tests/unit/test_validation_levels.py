"""The ``cached`` FHIR check gives the verdict of the ``full`` one (fhir.resources R4B
``model_validate``), on shapes it has seen and on shapes it has not."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import mappings
from mappings import _validate
from mappings._validate import bundle_problems
from tests._paths import CDA, HL7V2

Bundle = dict[str, Any]
Mutation = Callable[[Bundle], None]

ADT = mappings.convert((HL7V2 / "pamfr_a01_admission.er7").read_bytes(), "hl7v2", "pamfr-adt")
CRBIO = mappings.convert((CDA / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes(), "cda", "crbio")


def first(bundle: Bundle, kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def setter(kind: str, path: str, value: Any) -> Mutation:
    """Set ``path`` (dot-separated, ``[i]`` for list items) of the first ``kind``."""

    def mutate(bundle: Bundle) -> None:
        node: Any = first(bundle, kind)
        *parents, last = path.split(".")
        for part in parents:
            name, _, index = part.partition("[")
            node = node[name] if not index else node[name][int(index.rstrip("]"))]
        node[last] = value

    return mutate


def deleter(kind: str, key: str) -> Mutation:
    def mutate(bundle: Bundle) -> None:
        del first(bundle, kind)[key]

    return mutate


# Same shape as the valid resource (only a value changes): the cache's value path.
SAME_SHAPE: list[tuple[str, Bundle, Mutation]] = [
    ("bad date", ADT, setter("Patient", "birthDate", "1979-13-45")),
    ("date with time", ADT, setter("Patient", "birthDate", "1979-03-28T10:00:00")),
    ("bad dateTime", ADT, setter("Encounter", "period.start", "yesterday")),
    ("dateTime with time, no zone", ADT, setter("Encounter", "period.start", "2021-01-01T10:00")),
    ("code with spaces", ADT, setter("Patient", "gender", "fe  male")),
    ("code with a leading space", ADT, setter("Encounter", "status", " finished")),
    ("instant without time", CRBIO, setter("DocumentReference", "date", "2021-01-04")),
    ("bad id-like code", CRBIO, setter("DocumentReference", "status", "cur rent\n")),
]
# Same shape, and fhir.resources accepts it: the cached check must too (no stricter verdict).
SAME_SHAPE_ACCEPTED: list[tuple[str, Bundle, Mutation]] = [
    ("uri with a space", ADT, setter("Patient", "identifier[0].system", "urn:oid: 1.2")),
    ("another valid date", ADT, setter("Patient", "birthDate", "1980-02-29")),
    ("blank string", ADT, setter("Patient", "name[0].family", "   ")),
    ("bad base64", CRBIO, setter("DocumentReference", "content[0].attachment.data", "@@@")),
]
# A different shape: model_validate decides (and its verdict is remembered only when valid).
OTHER_SHAPE: list[tuple[str, Bundle, Mutation]] = [
    ("unknown element", ADT, setter("Patient", "favouriteColour", "blue")),
    ("number for a code", ADT, setter("Patient", "gender", 12)),
    ("boolean for a date", ADT, setter("Patient", "birthDate", True)),
    ("text for a boolean", ADT, setter("Patient", "active", "yes")),
    ("object for a string", ADT, setter("Patient", "name[0].family", {"x": 1})),
    ("list for a single element", ADT, setter("Encounter", "status", ["finished"])),
    ("single for a list element", ADT, setter("Patient", "identifier", {"value": "1"})),
    ("missing required status", ADT, deleter("Encounter", "status")),
    ("missing required class", ADT, deleter("Encounter", "class")),
    ("missing required content", CRBIO, deleter("DocumentReference", "content")),
    ("null in a complex list", ADT, setter("Patient", "identifier", [None])),
    ("empty string", ADT, setter("Patient", "name[0].family", "")),
    ("two choices", ADT, setter("Patient", "deceasedBoolean", True)),
    ("string for a decimal", CRBIO, setter("DocumentReference", "content[0].attachment.size", "x")),
]


def verdicts(bundle: Bundle) -> tuple[bool, bool]:
    return bool(bundle_problems(bundle, "full")), bool(bundle_problems(bundle, "cached"))


@pytest.mark.parametrize(
    ("source", "mutate"),
    [pytest.param(b, m, id=name) for name, b, m in SAME_SHAPE + SAME_SHAPE_ACCEPTED + OTHER_SHAPE],
)
def test_cached_check_rejects_what_the_full_check_rejects(source: Bundle, mutate: Mutation) -> None:
    assert verdicts(source) == (False, False)  # the valid shape is now remembered
    broken = copy.deepcopy(source)
    mutate(broken)
    full, cached = verdicts(broken)
    assert cached == full
    assert verdicts(broken) == (full, cached)  # and again, once its shape may be known


def test_every_same_shape_corruption_is_invalid_and_takes_the_value_path() -> None:
    for name, source, mutate in SAME_SHAPE:
        bundle_problems(source, "cached")
        broken = copy.deepcopy(source)
        mutate(broken)
        shapes = [
            (e["resource"]["resourceType"], _validate._shape(e["resource"]))
            for e in broken["entry"]
        ]
        assert all(s in _validate._SHAPES for s in shapes), name
        assert bundle_problems(broken, "full"), name
        assert bundle_problems(broken, "cached"), name


def test_the_shipped_fixtures_pass_every_level() -> None:
    for bundle in (ADT, CRBIO):
        for level in ("full", "cached", "light"):
            assert bundle_problems(bundle, level) == []  # type: ignore[arg-type]


def test_the_shape_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_validate, "_MAX_SHAPES", 1)
    monkeypatch.setattr(_validate, "_SHAPES", set())
    monkeypatch.setattr(_validate, "_PLANS", {})
    assert bundle_problems(ADT, "cached") == []
    assert len(_validate._SHAPES) == 1


def test_the_plan_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_validate, "_MAX_PLANS", 1)
    monkeypatch.setattr(_validate, "_PLANS", {})
    assert bundle_problems(ADT, "light") == []
    assert len(_validate._PLANS) == 1


def _reference_to_nowhere(bundle: Bundle) -> None:
    first(bundle, "Encounter")["subject"]["reference"] = (
        f"urn:uuid:{'0' * 8}-0000-4000-8000-{'0' * 12}"
    )


# Same shape, only a value changes: what a remembered shape ("plan") still checks.
PLAN_VALUES: list[tuple[str, Bundle, Mutation]] = [
    *SAME_SHAPE,
    *SAME_SHAPE_ACCEPTED,
    ("bare OID as a system", ADT, setter("Patient", "identifier[0].system", "1.2.250.1.71")),
    ("bad OID in a system", ADT, setter("Patient", "identifier[0].system", "urn:oid:1.02")),
    ("reference to no entry", ADT, _reference_to_nowhere),
    (
        "profile with a space (a repeated primitive)",
        ADT,
        setter("Patient", "meta.profile", ["a b"]),
    ),
    ("code with a tab", CRBIO, setter("Observation", "status", "fi\tnal")),
]


def _plan_keys(bundle: Bundle, level: str) -> list[tuple[str, str, Any]]:
    keys = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        keys.append((level, resource["resourceType"], _validate._flat(resource, [])))
    return keys


@pytest.mark.parametrize("level", ["light", "cached"])
@pytest.mark.parametrize(
    ("source", "mutate"), [pytest.param(b, m, id=name) for name, b, m in PLAN_VALUES]
)
def test_a_remembered_shape_gives_the_verdict_of_a_first_sight(
    level: str, source: Bundle, mutate: Mutation, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = copy.deepcopy(source)
    mutate(broken)
    monkeypatch.setattr(_validate, "_PLANS", {})
    first_sight = bundle_problems(broken, level)  # type: ignore[arg-type]
    assert bundle_problems(source, level) == []  # type: ignore[arg-type]
    assert all(k in _validate._PLANS for k in _plan_keys(broken, level))
    assert bundle_problems(broken, level) == first_sight  # type: ignore[arg-type]


def test_a_text_a_validator_passed_once_is_still_refused_elsewhere() -> None:
    # the texts remembered per field validator: a code seen valid in one place says
    # nothing of a bad value of the same shape elsewhere, nor of the same text in
    # another field whose validator is stricter
    assert bundle_problems(ADT, "cached") == []
    broken = copy.deepcopy(ADT)
    setter("Patient", "birthDate", "official")(broken)  # a valid code, not a date
    assert bundle_problems(broken, "cached") == bundle_problems(broken, "full")
    assert bundle_problems(broken, "cached")
