"""Run the tests that sit beside a mapping (``mappings/<name>.tests.yaml``).

Touches: files (reads the tests files and their inputs).

Each case converts an input file and checks FHIRPath expressions
(fhirpathpy, R4 model) on the Bundle: a scalar means the result is exactly
``[value]``, a list the exact result, ``{count: N}`` its length. A case with
``error:`` expects the conversion to fail with a reason containing that text.
A failing case carries readable diff lines (expected / actual per expression).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eai.errors import ConfigError, InputError
from mappings._loader import MAPPINGS_DIR
from mappings._model import Case, TestsFile
from mappings._yamlpos import read_yaml

__all__ = ["CaseResult", "read_tests", "run_case", "run_cases", "tests_files"]

Converter = Callable[[bytes, str, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case (its diff never holds more than the test file and
    the produced output show)."""

    mapping: str
    name: str
    tests_file: str
    passed: bool
    diff: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{'ok  ' if self.passed else 'FAIL'} {self.mapping}: {self.name}"
        return "\n".join([head, *(f"    {line}" for line in self.diff)])


def tests_files(name: str | None = None, directory: Path = MAPPINGS_DIR) -> list[Path]:
    """The tests files of mapping ``name`` (or of every mapping), sorted."""
    pattern = f"{name}.tests.yaml" if name else "*.tests.yaml"
    return sorted(directory.glob(pattern))


def read_tests(path: Path) -> TestsFile:
    doc = read_yaml(path.read_text(encoding="utf-8"), str(path))
    try:
        return TestsFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(doc.validation_issues(exc)) from None


def run_cases(
    path: Path, convert: Converter, content_type: Callable[[str], str]
) -> list[CaseResult]:
    """Run every case of the tests file ``path``."""
    tests = read_tests(path)
    return [_run(path, tests.mapping, case, convert, content_type) for case in tests.cases]


def run_case(
    path: Path, index: int, convert: Converter, content_type: Callable[[str], str]
) -> CaseResult:
    """Run case number ``index`` of the tests file ``path`` (pytest runs them one by one)."""
    tests = read_tests(path)
    return _run(path, tests.mapping, tests.cases[index], convert, content_type)


def _run(
    path: Path,
    mapping: str,
    case: Case,
    convert: Converter,
    content_type: Callable[[str], str],
) -> CaseResult:
    def result(diff: list[str]) -> CaseResult:
        return CaseResult(mapping, case.name, str(path), not diff, diff)

    kind = case.content_type or content_type(mapping)
    if case.message is not None and kind == "hl7v2":
        lines = [line for line in case.message.splitlines() if line.strip()]
        payload = "\r".join(lines).encode("utf-8") + b"\r"
    elif case.message is not None:
        payload = case.message.encode("utf-8")
    else:
        source = (path.parent / str(case.input)).resolve()
        try:
            payload = source.read_bytes()
        except OSError as exc:
            return result([f"cannot read input {case.input}: {exc.strerror or exc}"])
    try:
        bundle = convert(payload, kind, mapping)
    except InputError as exc:
        if case.error is not None and case.error in exc.reason:
            return result([])
        expected = f"a failure containing {case.error!r}" if case.error else "a Bundle"
        return result([f"expected: {expected}", f"actual:   failure: {exc.reason}"])
    if case.error is not None:
        return result([f"expected: a failure containing {case.error!r}", "actual:   a Bundle"])
    return result(_check(bundle, case.expect))


def _check(bundle: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    import fhirpathpy
    from fhirpathpy.models import models

    diff: list[str] = []
    for expression, wanted in expect.items():
        try:
            actual = fhirpathpy.evaluate(bundle, expression, model=models["r4"])
        except Exception as exc:  # noqa: BLE001 - fhirpathpy raises many kinds
            diff += [expression, f"  invalid FHIRPath: {type(exc).__name__}: {exc}"]
            continue
        if isinstance(wanted, dict) and set(wanted) == {"count"}:
            if len(actual) != wanted["count"]:
                diff += [
                    expression,
                    f"  expected: count {wanted['count']}",
                    f"  actual:   count {len(actual)} {_show(actual)}",
                ]
            continue
        expected = wanted if isinstance(wanted, list) else [wanted]
        if actual != expected:
            diff += [expression, f"  expected: {_show(expected)}", f"  actual:   {_show(actual)}"]
    return diff


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
