"""DMP publication benchmark: documents/s of the dmp destination, and where the time goes.

Run by hand::

    .venv/bin/python bench/dmp_publish.py [--documents 200]

Two measures, on the national CR-BIO ORU (``oru_r01_crbio_init.hl7``, a 218 kB CDA), each
document with its own document id (the stand-in refuses a unique id twice):

- ``prepare``: what the engine does for one publication on one core, stage by stage
  (read the ORU and the CDA header, metadata, the XAdES submission-set signature and
  ebRIM, the VIHF signed (exclusive C14N, RSA-SHA256), the MTOM package), in this process;
- ``send``: :class:`connectors.dmp.destination.DmpDestination` publishing to
  :class:`standins.dmp.DmpStandin` on 127.0.0.1 over mutual TLS, ``--connections``
  documents in flight (the destination's ``connections`` pool, kept alive), from the send
  to the stand-in's Success: documents/s, and the engine's CPU ms per document (this
  process's CPU: the stand-in runs in a child process). By default the stand-in runs
  with ``benchmark_only_skip_checks`` (it parses the MTOM package and the envelope and
  answers Success): it measures eai, not the stand-in; ``--checks`` adds the schemas and
  ebRIM rules, ``--verify`` xmlsec1 (a subprocess per request).

Prints a table and writes JSON to ``bench/results/`` (gitignored). Not a timed test.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._pin import Spent, add_pin_option, pin  # noqa: E402
from connectors.dmp._dsg import build_dsg  # noqa: E402
from connectors.dmp._soap import mtom_message  # noqa: E402
from connectors.dmp._source import publication_of  # noqa: E402
from connectors.dmp._vihf import build_vihf  # noqa: E402
from connectors.dmp.config import DmpDestinationConfig  # noqa: E402
from connectors.dmp.destination import DmpDestination, load_signing_identity  # noqa: E402
from eai.messages import MessageFacts, OutboxItem  # noqa: E402
from eai.net import TlsClientConfig  # noqa: E402
from eai.xds import build_metadata, build_request, signature_entry  # noqa: E402
from standins.dmp import DmpStandin  # noqa: E402

ORU = (REPO.parent / "shared" / "fixtures" / "hl7v2" / "oru_r01_crbio_init.hl7").read_bytes()
DOC_ROOT = "1.2.250.1.213.1.1.9"


def _oru(n: int, run: int) -> bytes:
    text = ORU.decode("utf-8")
    lines = re.split(r"[\r\n]+", text)
    for i, line in enumerate(lines):
        if line.startswith("OBX|1|ED|"):
            fields = line.split("|")
            parts = fields[5].split("^")
            cda = base64.b64decode(parts[4] + "=" * (-len(parts[4]) % 4))
            cda = cda.replace(
                f'<id root="{DOC_ROOT}"/>'.encode(), f'<id root="{DOC_ROOT}.{run}.{n}"/>'.encode()
            )
            parts[4] = base64.b64encode(cda).decode()
            fields[5] = "^".join(parts)
            lines[i] = "|".join(fields)
    return ("\r".join(line for line in lines if line) + "\r").encode()


def _item(n: int, run: int) -> OutboxItem:
    facts = MessageFacts(
        flags={"DESTDMP": "Y"}, ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10"
    )
    return OutboxItem(n, n, "dmp", _oru(n, run), f"B{n}", "k", facts=facts)


def _pki(directory: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO))
    from tests._pki import make_pki, make_seal  # a throw-away PKI, as the tests make

    pki = make_pki(directory / "pki")
    cert, key, ca = make_seal()
    out = {
        "ca": pki.ca,
        "server_cert": pki.server_cert,
        "server_key": pki.server_key,
        "client_cert": pki.client_cert,
        "client_key": pki.client_key,
    }
    for name, data in (
        ("seal_cert", cert.public_bytes(serialization.Encoding.PEM)),
        (
            "seal_key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
        ("seal_ca", ca.public_bytes(serialization.Encoding.PEM)),
    ):
        (directory / name).write_bytes(data)
        out[name] = directory / name
    return out


def _config(paths: dict[str, Path], url: str) -> DmpDestinationConfig:
    return DmpDestinationConfig(
        name="dmp",
        url=url,
        tls=TlsClientConfig(ca=paths["ca"], cert=paths["client_cert"], key=paths["client_key"]),
        sign_cert=paths["seal_cert"],
        sign_key=paths["seal_key"],
        source_id="1.2.250.1.999.1.1",
        structure_id="1120459876",
        activity_sector="SA25^1.2.250.1.71.4.2.4",
        homologation_id="HOMOL-BENCH",
    )


def _stages(config: DmpDestinationConfig, items: list[OutboxItem]) -> dict[str, Any]:
    signer = load_signing_identity(config.sign_cert, config.sign_key)
    timings: dict[str, list[float]] = {k: [] for k in ("read", "metadata", "dsg", "vihf", "mtom")}
    metadata, vihf = config.metadata_settings(), config.vihf_settings()
    with Spent() as spent:
        for item in items:
            t0 = time.perf_counter()
            pub = publication_of(item)
            t1 = time.perf_counter()
            submission, entry = build_metadata(pub, metadata)
            t2 = time.perf_counter()
            signature = build_dsg([(entry.unique_id, pub.document)], "2.25.1", signer)
            signed_entry = signature_entry(entry, submission, signature, "2.25.1")
            request = build_request(submission, entry, b"", (signed_entry, b""))
            t3 = time.perf_counter()
            assertion = build_vihf(pub.header.author, pub.ins, pub.ins_oid, False, vihf, signer)
            signed = etree.tostring(assertion)
            t4 = time.perf_counter()
            documents = {entry.entry_uuid: pub.document, signed_entry.entry_uuid: signature}
            mtom_message(request, documents, signed, config.url)
            t5 = time.perf_counter()
            spans = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
            for stage, span in zip(timings, spans, strict=True):
                timings[stage].append(span)
    return {
        "documents": len(items),
        "docs_per_s": len(items) / spent.wall,
        "cpu_ms_per_doc": 1000 * spent.cpu / len(items),
        "stage_ms": {k: 1000 * statistics.mean(v) for k, v in timings.items()},
    }


async def _send_all(config: DmpDestinationConfig, items: list[OutboxItem]) -> dict[str, Any]:
    """Send ``items`` with ``config.connections`` in flight (the engine sends that many
    patients' documents at once: it orders per patient only)."""
    destination = DmpDestination(config)
    await destination.start()
    latencies: list[float] = []
    gate = asyncio.Semaphore(config.connections)

    async def one(item: OutboxItem) -> None:
        async with gate:
            start = time.perf_counter()
            await destination.send(item)
            latencies.append(time.perf_counter() - start)

    try:
        # warm-up: TLS handshakes (one per connection), imports, the lxml/XSLT caches
        await asyncio.gather(*(one(item) for item in items[: config.connections]))
        latencies.clear()
        with Spent() as spent:
            await asyncio.gather(*(one(item) for item in items[config.connections :]))
    finally:
        await destination.close()
    latencies.sort()
    return {
        "documents": len(latencies),
        "connections": config.connections,
        "docs_per_s": len(latencies) / spent.wall,
        "engine_cpu_ms_per_doc": 1000 * spent.cpu / len(latencies),
        "engine_docs_per_cpu_s": len(latencies) / spent.cpu,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
    }


def _serve(paths: dict[str, Path], verify: bool, checks: bool, pipe: Connection) -> None:
    """The stand-in in its own process (its CPU is not the engine's)."""
    standin = DmpStandin(paths["server_cert"], paths["server_key"], paths["ca"], paths["seal_ca"])
    standin.verify_signature = verify
    standin.benchmark_only_skip_checks = not checks
    with standin:
        pipe.send(standin.url)
        pipe.recv()
        refused = [r for r in standin.received if r.answered != "success"]
        pipe.send({"received": len(standin.received), "refused": len(refused)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--connections", type=int, default=4, help="the destination's pool")
    parser.add_argument(
        "--checks",
        action="store_true",
        help="the stand-in checks as in the tests (schemas, ebRIM); default: parse only",
    )
    parser.add_argument("--verify", action="store_true", help="the stand-in runs xmlsec1 too")
    add_pin_option(parser)
    args = parser.parse_args()
    run = int(time.time())
    with tempfile.TemporaryDirectory(prefix="dmp-bench-") as tmp:
        paths = _pki(Path(tmp))
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        server = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(paths, args.verify, args.checks, theirs), daemon=True
        )
        server.start()
        try:
            url = ours.recv()
            pinned = pin(args.pin, server.pid or 0)
            config = _config(paths, url).model_copy(update={"connections": args.connections})
            items = [_item(n, run) for n in range(args.documents)]
            stages = _stages(config, items)
            count = args.documents + args.connections
            with Spent() as sending:
                sent = asyncio.run(_send_all(config, [_item(n, run + 1) for n in range(count)]))
            load = sending.load
            ours.send("stop")
            seen = ours.recv()
        finally:
            server.join(timeout=10)
    result = {
        "prepare": stages,
        "send": sent,
        "stand-in checks": args.checks,
        "stand-in verifies": args.verify,
        "stand-in": seen,
        "load": load,
        "cores": os.cpu_count(),
        "pinned": pinned,
    }
    print(
        f"prepare (one core): {stages['docs_per_s']:.0f} documents/s, "
        f"{stages['cpu_ms_per_doc']:.2f} ms CPU each; stages (ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in stages["stage_ms"].items())
    )
    mode = "full checks" if args.checks else "parse only"
    print(
        f"send, {args.connections} connections, stand-in {mode}, xmlsec1 "
        f"{'on' if args.verify else 'off'}: {sent['docs_per_s']:.0f} documents/s, "
        f"engine {sent['engine_cpu_ms_per_doc']:.2f} ms CPU each "
        f"({sent['engine_docs_per_cpu_s']:.0f} documents per CPU second), "
        f"p50 {sent['p50_ms']:.1f} ms, p95 {sent['p95_ms']:.1f} ms; "
        f"refused: {seen['refused']}; {pinned or 'not pinned'}; load {load:.1f} on "
        f"{os.cpu_count()} cores"
    )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"dmp_publish-{run}.json").write_text(json.dumps(result, indent=1))
    return 1 if seen["refused"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
