"""Identity checks benchmark: the charter and reconciliation (cache hit) per message, p50/p99.

Run by hand::

    .venv/bin/python bench/identity_checks.py [--messages 20000]

One process, one thread, one event loop. The identity-server stand-in runs on
127.0.0.1 in the same loop; the client's cache is warmed first, so each measured
message costs what the pipeline pays for a patient seen within ``cache_ttl``:

- ``charter``: :func:`identity.charter.evaluate_charter` with the bundled rules;
- ``reconcile``: :func:`identity.reconcile.reconcile` (PDQm by INS + PIXm, both cache hits,
  trait comparison);
- ``per message``: both, timed together (the figure the target applies to: p99 <= 1 ms);
- ``extraction`` (for reference): :func:`identity.patient.identity_from_hl7` on a parsed
  PAM FR A01;
- ``reconcile_miss_loopback`` (for reference, up to 1,000 messages): reconciliation with
  the cache off, i.e. a PDQm search and a PIXm query to the stand-in over loopback HTTP.

Prints a table and writes JSON to ``bench/results/`` (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIXTURE = REPO.parent / "shared" / "fixtures" / "hl7v2" / "pamfr_a01_admission.er7"
REGIONAL = "urn:oid:1.2.250.1.999.1.1"
TARGET_P99_MS = 1.0

PATIENTS = [
    {
        "id": "R0001",
        "regional_id": "R0001",
        "ins": "279035121518989",
        "ins_oid": "1.2.250.1.213.1.4.10",
        "birth_name": "PAT-TROIS",
        "given": ["DOMINIQUE"],
        "birth_date": "1979-03-28",
        "gender": "female",
        "birth_place": "63220",
        "identifiers": [{"system": "urn:oid:1.2.250.1.999.2.1", "value": "000003"}],
    },
    {
        "id": "R0002",
        "regional_id": "R0002",
        "ins": "277076322082910",
        "ins_oid": "1.2.250.1.213.1.4.10",
        "birth_name": "MARTIN",
        "given": ["CLAIRE"],
        "birth_date": "1977-07-01",
        "gender": "female",
        "birth_place": "63220",
        "identifiers": [{"system": "urn:oid:1.2.250.1.999.2.1", "value": "000004"}],
    },
]


def _quantiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pick(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1e6

    return {
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "max_ms": ordered[-1] / 1e6,
        "mean_ms": statistics.fmean(ordered) / 1e6,
    }


async def measure(messages: int) -> dict[str, Any]:
    from eai import hl7
    from eai.config import IdentityServerConfig
    from identity.charter import CheckContext, evaluate_charter, load_charter
    from identity.patient import identity_from_hl7
    from identity.pdqm import IdentityServerClient
    from identity.reconcile import reconcile
    from standins.identity import StandinServer, StandinService

    parsed = hl7.parse(FIXTURE.read_bytes())
    base = identity_from_hl7(parsed)
    identities = [
        base,
        replace(
            base,
            ins="277076322082910",
            birth_name="MARTIN",
            first_given_name="CLAIRE",
            birth_given_names=("CLAIRE",),
            birth_date="19770701",
        ),
    ]
    rules = load_charter()
    ctx = CheckContext(test_feed=True)
    service = StandinService(PATIENTS, REGIONAL)
    async with StandinServer(service) as server:
        cfg = IdentityServerConfig(url=server.url, regional_id_system=REGIONAL, cache_ttl=3600)
        async with IdentityServerClient(cfg) as client:
            for ident in identities:  # warm the cache
                result = await reconcile(client, ident)
                assert result.outcome == "matched", result
            asked = service.request_count
            charter: list[int] = []
            rec: list[int] = []
            total: list[int] = []
            extraction: list[int] = []
            clock = time.perf_counter_ns
            for i in range(messages):
                ident = identities[i % len(identities)]
                t0 = clock()
                found = evaluate_charter(rules, ident, ctx)
                t1 = clock()
                result = await reconcile(client, ident)
                t2 = clock()
                identity_from_hl7(parsed)
                t3 = clock()
                charter.append(t1 - t0)
                rec.append(t2 - t1)
                total.append(t2 - t0)
                extraction.append(t3 - t2)
                assert not found and result.outcome == "matched"
            assert service.request_count == asked, "a measured message went to the server"
            hits = client.stats.cache_hits
        cold_cfg = cfg.model_copy(update={"cache_ttl": 0.0})
        async with IdentityServerClient(cold_cfg) as cold_client:
            cold: list[int] = []
            for i in range(min(messages, 1000)):
                t0 = time.perf_counter_ns()
                await reconcile(cold_client, identities[i % len(identities)])
                cold.append(time.perf_counter_ns() - t0)
    return {
        "messages": messages,
        "cache_hits": hits,
        "server_requests": asked,
        "charter": _quantiles(charter),
        "reconcile": _quantiles(rec),
        "per_message": _quantiles(total),
        "extraction": _quantiles(extraction),
        "reconcile_miss_loopback": _quantiles(cold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.messages))
    print(f"identity checks, {result['messages']} messages, one core (cache hits)")
    print(f"{'':24} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name in ("charter", "reconcile", "per_message", "extraction", "reconcile_miss_loopback"):
        q = result[name]
        print(
            f"{name:24} {q['p50_ms']:8.3f} {q['p90_ms']:8.3f} {q['p99_ms']:8.3f} {q['max_ms']:8.3f}"
        )
    p99 = result["per_message"]["p99_ms"]
    verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
    print(f"target p99 <= {TARGET_P99_MS} ms per message: {verdict} ({p99:.3f} ms)")
    meta = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "target_p99_ms": TARGET_P99_MS,
    }
    out = REPO / "bench" / "results" / f"identity_checks-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "result": result}, indent=2), encoding="utf-8")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
