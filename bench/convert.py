"""FHIR conversion benchmark: inputs -> FHIR Bundle per second on one core, and where the time goes.

Run by hand::

    .venv/bin/python bench/convert.py [--seconds 3] [--case adt]

For each case, one process, one thread:

- ``end to end``: ``mappings.convert`` (parse + mapping + FHIR check) with the
  ``full`` check (``model_validate`` of every resource by its
  ``fhir.resources.R4B`` model), the ``cached`` one (the same verdict: shapes
  ``model_validate`` accepted are remembered, then only primitive values are
  checked) and the ``light`` one (the element walk of ``mappings._validate``);
- the phases alone, to see the shares: parsing (``eai.hl7.parse``), mapping
  (``Mapping.run``), full check, light check, and ``model_construct`` of every
  resource followed by the light check (what the brief asked to compare).

A case is one function returning a :class:`Case` (``CASES`` lists them): the
ADT case is PAM FR A01 -> FHIR; a CDA case (CR-BIO TSH report) is one more
function. Prints a table and writes JSON to ``bench/results/`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIXTURES = REPO.parent / "shared" / "fixtures"


@dataclass(frozen=True)
class Case:
    """One benchmark input: how to parse it and with which mapping."""

    name: str
    unit: str
    payload: bytes
    content_type: str
    mapping: str
    parse: Callable[[bytes], Any]
    target: float
    """Messages (or documents) per second to reach, including the FHIR check."""


def adt_case() -> Case:
    from eai import hl7

    payload = (FIXTURES / "hl7v2" / "pamfr_a01_admission.er7").read_bytes()
    return Case("PAM FR A01 -> FHIR", "messages", payload, "hl7v2", "pamfr-adt", hl7.parse, 2000)


def crbio_case() -> Case:
    from mappings.functions.cda_source import CdaSource

    payload = (FIXTURES / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()
    parse = CdaSource().parse  # hardened lxml parse, ClinicalDocument located
    return Case("CR-BIO TSH report -> FHIR", "documents", payload, "cda", "crbio", parse, 300)


CASES: dict[str, Callable[[], Case]] = {"adt": adt_case, "crbio": crbio_case}


def _rate(function: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second of ``function`` over about ``seconds`` of CPU time (after a
    warm-up): CPU time, so that other processes on the machine do not skew it."""
    for _ in range(50):
        function()
    count, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(100):
            function()
        count += 100
        now = time.process_time()
        if now >= deadline:
            return count / (now - start)


def run_case(case: Case, seconds: float) -> dict[str, Any]:
    from fhir.resources.R4B import get_fhir_model_class

    import mappings
    from mappings._validate import bundle_problems

    compiled = mappings.load_mapping(case.mapping)
    bundle = compiled.run(case.parse(case.payload))
    assert bundle_problems(bundle, "full") == [] and bundle_problems(bundle, "light") == []
    resources = [
        (get_fhir_model_class(e["resource"]["resourceType"]), e["resource"])
        for e in bundle["entry"]
    ]

    def construct_and_light() -> None:
        for model, resource in resources:
            model.model_construct(**resource)
        bundle_problems(bundle, "light")

    phases = {
        "parse": lambda: case.parse(case.payload),
        "parse + mapping": lambda: compiled.run(case.parse(case.payload)),
        "check full (model_validate)": lambda: bundle_problems(bundle, "full"),
        "check light (element walk)": lambda: bundle_problems(bundle, "light"),
        "check cached (shape + values)": lambda: bundle_problems(bundle, "cached"),
        "model_construct + light": construct_and_light,
    }
    per_call = {name: 1e6 / _rate(fn, seconds) for name, fn in phases.items()}
    # the mapping reads a freshly parsed message (the reader caches what it split)
    per_call["mapping"] = per_call.pop("parse + mapping") - per_call["parse"]
    end_to_end = {
        level: _rate(
            lambda level=level: mappings.convert(
                case.payload, case.content_type, case.mapping, validation=level
            ),
            seconds,
        )
        for level in ("full", "cached", "light")
    }
    return {
        "case": case.name,
        "unit": case.unit,
        "target_per_s": case.target,
        "end_to_end_per_s": end_to_end,
        "phase_us": per_call,
        "resources": len(resources),
        "json_bytes": len(json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))),
    }


def _print(result: dict[str, Any]) -> None:
    phases = result["phase_us"]
    size = f"{result['resources']} resources, {result['json_bytes']} bytes of JSON"
    print(f"\n{result['case']} ({size})")
    for level, rate in result["end_to_end_per_s"].items():
        ok = "meets" if rate >= result["target_per_s"] else "BELOW"
        print(
            f"  end to end, {level:5} check: {rate:8.0f} {result['unit']}/s ({ok} the "
            f"{result['target_per_s']:.0f}/s target)"
        )
    for level, check in (
        ("full", "check full (model_validate)"),
        ("cached", "check cached (shape + values)"),
        ("light", "check light (element walk)"),
    ):
        total = phases["parse"] + phases["mapping"] + phases[check]
        shares = ", ".join(
            f"{name} {100 * phases[name] / total:.0f}%" for name in ("parse", "mapping", check)
        )
        print(f"  shares with the {level} check: {shares}")
    for name, micros in phases.items():
        print(f"    {name:30} {micros:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    args = parser.parse_args()
    results = [run_case(CASES[name](), args.seconds) for name in (args.case or sorted(CASES))]
    for result in results:
        _print(result)
    out = REPO / "bench" / "results" / f"convert-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine()}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2), encoding="utf-8")
    print(f"\nwritten to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
