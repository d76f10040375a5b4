"""MSSanté mailing benchmark: documents/s of the mssante destination, and where the time goes.

Run by hand::

    .venv/bin/python bench/mssante_send.py [--documents 300] [--connections 2]

On the national CR-BIO ORU (``oru_r01_crbio_init.hl7``, a 218 kB CDA), flagged for the
professionals only (routing matrix row 2: one mail per document):

- ``prepare``: what the destination does for one document on one core, stage by stage
  (read the ORU and the CDA header, the CORPSMAIL bodies; the XDM metadata and zip; the
  MIME mail), in this process;
- ``send``: :class:`connectors.mssante.destination.MssanteDestination` mailing the documents
  (``--connections`` in flight, as the delivery worker does) to an aiosmtpd server with
  STARTTLS and a required client certificate, run in a child process so that this
  process's CPU time is the client's alone. Connections are kept and reused (NOOP).

Prints a table and writes JSON to ``bench/results/`` (gitignored). Not a timed test.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import multiprocessing
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._pin import Spent, add_pin_option, pin  # noqa: E402
from connectors.mssante import audience, build_mails, build_xdm, mail_source  # noqa: E402
from connectors.mssante.config import MssanteDestinationConfig  # noqa: E402
from connectors.mssante.destination import MssanteDestination  # noqa: E402
from eai import hl7  # noqa: E402
from eai.messages import MessageFacts, OutboxItem, Recipient  # noqa: E402
from standins.net import free_port  # noqa: E402

ORU = (REPO.parent / "shared" / "fixtures" / "hl7v2" / "oru_r01_crbio_init.hl7").read_bytes()


def _item(n: int) -> OutboxItem:
    message = hl7.parse(ORU)
    flags = {**hl7.meta_dmp_mss(message), "INVISIBLE_PATIENT": "Y", "DESTMSSANTEPAT": "N"}
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    facts = MessageFacts(flags, recipients, "279035121518989", "1.2.250.1.213.1.4.10")
    return OutboxItem(n, n, "mss", ORU, "015", f"k{n}", 1, facts=facts)


def _pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate (127.0.0.1, localhost) and a client one (EC P-256)."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(cn: str, key: Any, issuer: tuple[x509.Name, Any] | None, **ext: Any) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer[0] if issuer else name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        )
        if "san" in ext:
            builder = builder.add_extension(ext["san"], False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256())

    out: dict[str, Path] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("bench CA", ca_key, None)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    for role, extra in (("server", {"san": san}), ("client", {})):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(f"bench {role}", key, (ca.subject, ca_key), **extra)
        out[f"{role}_cert"] = directory / f"{role}.crt"
        out[f"{role}_key"] = directory / f"{role}.key"
        out[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{role}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    out["ca"] = directory / "ca.crt"
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return out


def _serve(paths: dict[str, Path], port: int, ready: Any, stop: Any, counter: Any) -> None:
    """The SMTP server (child process): aiosmtpd, STARTTLS required, client cert required."""
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            with counter.get_lock():
                counter.value += 1
            return "250 2.0.0 OK"

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths["server_cert"], paths["server_key"])
    ctx.load_verify_locations(paths["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    controller = Controller(
        Count(),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        data_size_limit=0,
    )
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def _config(paths: dict[str, Path], port: int, connections: int) -> MssanteDestinationConfig:
    return MssanteDestinationConfig.model_validate(
        {
            "name": "mss",
            "host": "127.0.0.1",
            "port": port,
            "tls": {
                "ca": str(paths["ca"]),
                "cert": str(paths["client_cert"]),
                "key": str(paths["client_key"]),
            },
            "sender": "labo-auto@labo.mssante.fr",
            "source_id": "1.2.250.1.999.1.1",
            "connections": connections,
        }
    )


def _stages(config: MssanteDestinationConfig, items: list[OutboxItem]) -> dict[str, Any]:
    spent = {"read": 0.0, "xdm": 0.0, "mail": 0.0}
    size = 0
    with Spent() as whole:
        for item in items:
            t0 = time.perf_counter()
            who = audience(item.facts.flags)
            source = mail_source(item)
            t1 = time.perf_counter()
            xdm = build_xdm(source.publication, config.metadata_settings())
            t2 = time.perf_counter()
            mails = build_mails(config, item, source, xdm, who)
            t3 = time.perf_counter()
            size += sum(len(m.data) for m in mails)
            spent["read"] += t1 - t0
            spent["xdm"] += t2 - t1
            spent["mail"] += t3 - t2
    return {
        "documents": len(items),
        "cpu_ms_per_doc": 1000 * whole.cpu / len(items),
        "wall_ms_per_doc": 1000 * whole.wall / len(items),
        "stage_ms": {k: 1000 * v / len(items) for k, v in spent.items()},
        "mail_bytes": size // len(items),
    }


async def _send_all(config: MssanteDestinationConfig, items: list[OutboxItem]) -> dict[str, Any]:
    destination = MssanteDestination(config)
    await destination.start()
    gate = asyncio.Semaphore(config.connections)

    async def one(item: OutboxItem) -> None:
        async with gate:
            await destination.send(item)

    await one(items[0])  # the first connection and TLS handshake, not counted
    with Spent() as spent:
        await asyncio.gather(*(one(i) for i in items[1:]))
    await destination.close()
    n = len(items) - 1
    return {
        "documents": n,
        "docs_per_s": n / spent.wall,
        "cpu_ms_per_doc": 1000 * spent.cpu / n,
        "docs_per_cpu_s": n / spent.cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--connections", type=int, default=2)
    add_pin_option(parser)
    args = parser.parse_args()
    items = [_item(n) for n in range(1, args.documents + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = _pki(Path(tmp))
        port = free_port()
        config = _config(paths, port, args.connections)
        stages = _stages(config, items[:100])
        spawn = multiprocessing.get_context("spawn")
        ready, stop, counter = spawn.Event(), spawn.Event(), spawn.Value("i", 0)
        server = spawn.Process(target=_serve, args=(paths, port, ready, stop, counter))
        server.start()
        try:
            if not ready.wait(30):
                raise RuntimeError("the SMTP server did not start")
            pinned = pin(args.pin, server.pid or 0)
            with Spent() as sending:
                send = asyncio.run(_send_all(config, items))
            load = sending.load
        finally:
            stop.set()
            server.join(30)
        assert counter.value == len(items), (counter.value, len(items))
    result = {
        "prepare": stages,
        "send": send,
        "connections": args.connections,
        "pinned": pinned,
        "load": load,
        "cores": os.cpu_count(),
    }
    print(
        f"prepare: {stages['cpu_ms_per_doc']:.2f} ms CPU per document "
        f"(read {stages['stage_ms']['read']:.2f}, xdm {stages['stage_ms']['xdm']:.2f}, "
        f"mail {stages['stage_ms']['mail']:.2f} ms; mail {stages['mail_bytes']} bytes)"
    )
    print(
        f"send: {send['docs_per_s']:.0f} documents/s, {send['cpu_ms_per_doc']:.2f} ms CPU "
        f"per document ({send['docs_per_cpu_s']:.0f} per CPU second), "
        f"{args.connections} connection(s); {pinned or 'not pinned'}; load {load:.1f} on "
        f"{os.cpu_count()} cores"
    )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "mssante_send.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
