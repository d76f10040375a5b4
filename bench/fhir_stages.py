"""Where the engine's CPU goes for one CR-BIO report sent to a FHIR server, stage by stage.

Run by hand (also called by ``bench/fhir_send.py``)::

    .venv/bin/python bench/fhir_stages.py [--rounds 7] [--n 10]

One process, one thread, the engine's own functions on the national CR-BIO ORU
(``oru_r01_crbio_init.hl7``), in the order the engine runs them:

- ``parse``: the hl7v2 content parser (HL7 parse, the CI-SIS document check: base64
  decode and hardened XML parse of the CDA, kept with the message for the mapping,
  routing facts, the CDA's patient); the decode and the parse are also shown alone;
- ``map``: ``mappings.convert(..., "cisis-oru-mdm", validation="cached")`` as the
  pipeline calls it, on the parsed message (its CDA already decoded and parsed), split
  into: ``crbio`` mapping, its ``light`` check, the outer mapping (copy of the
  resources), its ``cached`` FHIR check;
- ``seal``: the Bundle to compact JSON (:func:`eai.compact_json.dumps`), AES-GCM sealed
  (what the outbox stores);
- ``send``: what the destination does before and after the HTTP exchange: open the
  sealed payload, ``json.loads``, :func:`connectors.fhir.transaction.prepare`,
  ``compact_json.dumps``, and :func:`connectors.fhir.outcome.verdict` of a
  transaction-response.

CPU time of this thread (``time.thread_time``), the best of ``--rounds`` rounds of
``--n`` reports each (the machine is shared: the best round is the least disturbed).
Not measured here: SQLite (journal, outbox, outcomes), MLLP, asyncio, httpx:
``bench/fhir_send.py`` gives the engine's whole CPU per report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORU = REPO.parent / "shared" / "fixtures" / "hl7v2" / "oru_r01_crbio_init.hl7"


def _best(fn: Callable[[], object], rounds: int, n: int) -> float:
    """Milliseconds of thread CPU per call, best round."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - started) / n)
    return best * 1000


def stages(payload: bytes, rounds: int = 7, n: int = 10) -> dict[str, float]:
    """CPU ms per report of each stage (see the module docstring)."""
    sys.path.insert(0, str(REPO))
    import mappings
    from connectors.fhir.outcome import verdict
    from connectors.fhir.transaction import prepare
    from eai import compact_json, hl7
    from eai.cda import find_clinical_document, read_cda
    from eai.content import content_parser
    from eai.messages import NO_FACTS
    from eai.store import Cipher
    from eai.xml import parse_xml
    from mappings._validate import bundle_problems
    from mappings.functions.cda_document import clinical_document
    from mappings.functions.cda_source import CdaSourceDocument

    parser = content_parser("hl7v2")
    assert parser is not None
    content = parser(payload, None)
    message = content.routable
    assert isinstance(message, hl7.Hl7Message)
    cipher = Cipher(b"k" * 32)
    data = hl7.embedded_documents(message)[0].data
    root = parse_xml(data)
    inner_doc = CdaSourceDocument(clinical_document(root), data)
    crbio = mappings.load_mapping("crbio")
    inner = crbio.run(inner_doc)
    outer_map = mappings.load_mapping("cisis-oru-mdm")
    cisis = outer_map.source
    bundle = mappings.convert(
        payload, "hl7v2", "cisis-oru-mdm", parsed=message, validation="cached"
    )
    text = compact_json.dumps(bundle)
    sealed = cipher.seal(text)
    prepared = prepare(json.loads(text), NO_FACTS, "transaction", "ins_then_local")
    answer = json.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {"response": {"status": "201 Created", "location": f"X/{i}/_history/1"}}
                for i in range(len(prepared.labels))
            ],
        }
    ).encode()

    def outer_run() -> None:
        document = cisis.from_routable(message)
        outer_map.run(document)

    def send() -> None:
        got = prepare(json.loads(cipher.open(sealed)), NO_FACTS, "transaction", "ins_then_local")
        compact_json.dumps(got.bundle)
        verdict(200, {}, answer, got.labels, datetime.now(UTC), "http://peer/fhir")

    def inner_total() -> None:
        cisis.from_routable(message)

    measured = {
        "parse (content parser, CDA check)": _best(lambda: parser(payload, None), rounds, n),
        "map: total (convert, cached check)": _best(
            lambda: mappings.convert(
                payload, "hl7v2", "cisis-oru-mdm", parsed=message, validation="cached"
            ),
            rounds,
            n,
        ),
        "map: inner CDA -> FHIR (all of it)": _best(inner_total, rounds, n),
        "(in parse, shared) base64 decode of OBX-5": _best(
            lambda: hl7.decode_base64(hl7.document_segments(message)[0][1].get(5, 1, 5)), rounds, n
        ),
        "(in parse, shared) CDA parse": _best(
            lambda: read_cda(find_clinical_document(parse_xml(data))), rounds, n
        ),
        "map:   crbio mapping run": _best(lambda: crbio.run(inner_doc), rounds, n),
        "map:   crbio light check": _best(lambda: bundle_problems(inner, "light"), rounds, n),
        "map: outer mapping run (incl. inner)": _best(outer_run, rounds, n),
        "map: outer cached check": _best(lambda: bundle_problems(bundle, "cached"), rounds, n),
        "seal (compact_json.dumps + AES-GCM)": _best(
            lambda: cipher.seal(compact_json.dumps(bundle)), rounds, n
        ),
        "send (open, loads, prepare, dumps, verdict)": _best(send, rounds, n),
    }
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "bench"))
    from fhir_send import _report

    result = stages(_report("S0", 0), args.rounds, args.n)
    for name, ms in result.items():
        print(f"{name:46} {ms:7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
