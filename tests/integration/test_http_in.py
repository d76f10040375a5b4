"""The http listener on 127.0.0.1: 202 after the commit, a clear 4xx for each bad input, TLS.

Requests are made with the standard library's ``http.client`` (on a thread: it
blocks) or raw sockets for malformed HTTP, never with the server's own parser.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.http_in import HttpListener, HttpListenerConfig
from eai.config import TlsServerConfig
from eai.errors import ConfigError
from eai.registry import listeners
from tests._http_client import TSH, http_config, post, raw, request, serving, status_of
from tests._listeners import FakeJournal, run
from tests._paths import CDA
from tests._pki import Pki, make_pki

pytestmark = pytest.mark.integration

CDA_FILES = sorted(CDA.glob("*.xml"))
CANARY = "CANARY-http-51aa"


def _invalid_tsh() -> bytes:
    return TSH.read_bytes().replace(b"<title>", b"<bogus/><title>", 1)


# --- config -----------------------------------------------------------------------------


def test_registered_as_http() -> None:
    assert listeners()["http"].config_model is HttpListenerConfig


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        http_config(surprise=True)
    with pytest.raises(ValidationError):
        http_config(bind="nowhere")
    with pytest.raises(ValidationError):
        http_config(path="cda")  # must start with /
    with pytest.raises(ValidationError, match="client_ca"):
        http_config(tls={"cert": "a.pem", "key": "b.pem", "require_client_cert": True})
    cfg = http_config(read_timeout="2s")
    assert (cfg.path, cfg.read_timeout, cfg.validate_schema) == ("/cda", 2.0, True)
    for name, info in HttpListenerConfig.model_fields.items():
        assert info.description, name


# --- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_each_fixture_accepted_with_its_message_id(path: Path) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            reply = await post(listener.port, path.read_bytes())
        assert reply.status == 202, reply.body
        assert reply.body == {"message_id": 1}
        assert reply.headers["content-type"] == "application/json"
        [entry] = journal.entries
        assert entry.status == "received" and entry.content_type == "cda"
        assert entry.payload == path.read_bytes()
        assert entry.message_type.startswith("CDA^")
        assert entry.peer.startswith("127.0.0.1:")

    run(scenario())


def test_answer_only_after_the_commit() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()
        async with serving(journal) as listener:
            pending = asyncio.create_task(post(listener.port, TSH.read_bytes()))
            while journal.calls == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert not pending.done()
            journal.gate.set()
            assert (await pending).status == 202

    run(scenario())


def test_same_body_again_gets_the_first_id() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            first = await post(listener.port, TSH.read_bytes(), content_type="text/xml")
            again = await post(listener.port, TSH.read_bytes())
        assert first.body == {"message_id": 1}
        assert again.status == 202 and again.body == {"message_id": 1, "duplicate": True}
        assert len(journal.entries) == 1

    run(scenario())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id></ClinicalDocument>", "not well-formed"),
        (b"", "empty document"),
        (
            b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(
                b'<!ENTITY a%d "%s">' % (i, (b"&a%d;" % (i - 1) if i > 1 else b"&a;") * 10)
                for i in range(1, 10)
            )
            + b"]><l>&a9;</l>",
            "entity",
        ),
        (b"<!DOCTYPE d SYSTEM 'http://127.0.0.1:9/x.dtd'><d/>", "external"),
        (
            b'<d xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></d>',
            "XInclude",
        ),
    ],
    ids=["malformed", "empty", "billion_laughs", "external_dtd", "xinclude"],
)
def test_bad_xml_answered_400_and_journaled_rejected(body: bytes, reason: str) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            reply = await post(listener.port, body)
        assert reply.status == 400
        assert reason in reply.body["error"]
        assert reply.body["message_id"] == 1
        assert journal.entries[0].status == "rejected"
        assert reason in journal.entries[0].reject_reason

    run(scenario())


def test_xxe_answered_400_without_reading_the_file_or_calling_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text(CANARY)
        trap = socket.socket()
        trap.bind(("127.0.0.1", 0))
        trap.listen(4)
        trap.setblocking(False)
        port = trap.getsockname()[1]
        bodies = [
            f'<!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">]><d>&x;</d>'.encode(),
            f'<!DOCTYPE d [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/">]><d>&x;</d>'.encode(),
        ]
        try:
            journal = FakeJournal()
            async with serving(journal) as listener:
                replies = [await post(listener.port, b) for b in bodies]
            assert [r.status for r in replies] == [400, 400]
            assert all("entities" in r.body["error"] for r in replies)
            assert all(CANARY not in json.dumps(r.body) for r in replies)
            with pytest.raises(BlockingIOError):
                trap.accept()
        finally:
            trap.close()

    run(scenario())


def test_schema_invalid_answered_422_with_lines() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            reply = await post(listener.port, _invalid_tsh())
        line = next(
            i for i, text in enumerate(_invalid_tsh().splitlines(), 1) if b"<bogus/>" in text
        )
        assert reply.status == 422
        assert "does not conform to the CDA schema" in reply.body["error"]
        assert reply.body["errors"][0]["line"] == line
        assert "bogus" in reply.body["errors"][0]["message"]
        assert reply.body["message_id"] == 1
        [entry] = journal.entries
        assert entry.status == "rejected" and f"line {line}:" in entry.reject_reason
        assert entry.control_id == "1.2.250.1.213.1.1.1.55.2024.9.1"

    run(scenario())


def test_not_a_cda_answered_422() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal()) as listener:
            reply = await post(listener.port, b"<Patient xmlns='http://hl7.org/fhir'/>")
        assert reply.status == 422 and "not a CDA" in reply.body["error"]

    run(scenario())


def test_too_large_answered_413_and_not_journaled() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, max_body_bytes=1000) as listener:
            declared = await post(listener.port, TSH.read_bytes())

            def chunked() -> Any:
                yield TSH.read_bytes()[:800]
                yield TSH.read_bytes()[800:1600]

            streamed = await post(listener.port, chunked())
        assert declared.status == 413 and "max_body_bytes" in declared.body["error"]
        assert streamed.status == 413
        assert journal.entries == []

    run(scenario())


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain; charset=utf-8"])
def test_wrong_content_type_answered_415(content_type: str | None) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            reply = await post(listener.port, TSH.read_bytes(), content_type=content_type)
        assert reply.status == 415 and "application/xml" in reply.body["error"]
        assert journal.entries == []

    run(scenario())


def test_xml_with_charset_parameter_accepted() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal()) as listener:
            reply = await post(
                listener.port, TSH.read_bytes(), content_type="Application/XML; charset=UTF-8"
            )
        assert reply.status == 202

    run(scenario())


def test_other_paths_and_methods() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal(), path="/intake/cda") as listener:
            wrong_path = await post(listener.port, TSH.read_bytes(), path="/cda")
            get = await post(listener.port, None, method="GET", path="/intake/cda")
            put = await post(listener.port, TSH.read_bytes(), method="PUT", path="/intake/cda")
            query = await post(listener.port, TSH.read_bytes(), path="/intake/cda?x=1")
            head = await post(listener.port, None, method="HEAD", path="/intake/cda")
            status_line = await raw(listener.port, b"GET /intake/cda HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wrong_path.status == 404 and "/intake/cda" in wrong_path.body["error"]
        assert get.status == 405 and get.headers["allow"] == "POST"
        assert put.status == 405
        assert query.status == 202
        assert head.status == 405 and head.body == {}
        assert status_line.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")

    run(scenario())


def test_journal_down_answered_503_then_recovers() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.fail = True
        async with serving(journal) as listener:
            down = await post(listener.port, TSH.read_bytes())
            journal.fail = False
            up = await post(listener.port, TSH.read_bytes())
        assert down.status == 503 and down.headers["retry-after"] == "5"
        assert up.status == 202 and up.body == {"message_id": 1}

    run(scenario())


def test_unexpected_error_in_ingest_does_not_kill_the_listener() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.crash = True
        async with serving(journal) as listener:
            failed = await post(listener.port, TSH.read_bytes())
            assert failed.status == 500 and "send the document again" in failed.body["error"]
            journal.crash = False
            assert (await post(listener.port, TSH.read_bytes())).status == 202

    run(scenario())


def test_keep_alive_serves_several_documents_on_one_connection() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:

            def two_posts() -> list[int]:
                conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
                try:
                    statuses = []
                    for body in (TSH.read_bytes(), (CDA / "TLM-CR_2022.01.xml").read_bytes()):
                        conn.request("POST", "/cda", body, {"Content-Type": "application/xml"})
                        response = conn.getresponse()
                        response.read()
                        statuses.append(response.status)
                    return statuses
                finally:
                    conn.close()

            assert await asyncio.to_thread(two_posts) == [202, 202]
        assert len(journal.entries) == 2

    run(scenario())


def test_expect_100_continue() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal()) as listener:
            body = TSH.read_bytes()
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(
                b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            await writer.drain()
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim.startswith(b"HTTP/1.1 100 ")
            writer.write(body)
            await writer.drain()
            final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert final.startswith(b"HTTP/1.1 202 ")
            writer.close()
            await writer.wait_closed()

    run(scenario())


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
        b"POST /cda HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    ],
    ids=["garbage", "conflicting_length", "huge_header"],
)
def test_malformed_http_answered_4xx_and_closed(request_bytes: bytes) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal) as listener:
            response = await raw(listener.port, request_bytes)
            assert 400 <= status_of(response) < 500
            assert b"THIS IS" not in response and b"aaaa" not in response  # nothing echoed
            assert (await post(listener.port, TSH.read_bytes())).status == 202
        assert len(journal.entries) == 1

    run(scenario())


def test_slow_body_answered_408() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal(), read_timeout="300ms") as listener:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(
                b"POST /cda HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
                b"Content-Length: 1000\r\n\r\n<ClinicalDocument"
            )
            await writer.drain()
            async with asyncio.timeout(5):
                response = await reader.read(-1)
            writer.close()
            await writer.wait_closed()
        assert status_of(response) == 408

    run(scenario())


def test_idle_connection_closed() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal(), idle_timeout="200ms") as listener:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            async with asyncio.timeout(5):
                assert await reader.read(-1) == b""
            writer.close()
            await writer.wait_closed()

    run(scenario())


def test_too_many_connections_answered_503() -> None:
    async def scenario() -> None:
        async with serving(FakeJournal(), max_connections=1) as listener:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            await asyncio.sleep(0.1)
            response = await raw(listener.port, b"")
            assert status_of(response) == 503
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.1)
            assert (await post(listener.port, TSH.read_bytes())).status == 202

    run(scenario())


def test_stop_finishes_a_request_being_journaled() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()
        listener = HttpListener(http_config(), journal)
        await listener.start()
        pending = asyncio.create_task(post(listener.port, TSH.read_bytes()))
        while journal.calls == 0:
            await asyncio.sleep(0.01)
        stopping = asyncio.create_task(listener.stop(5.0))
        await asyncio.sleep(0.1)
        journal.gate.set()
        await stopping
        reply = await pending
        assert reply.status == 202 and reply.headers.get("connection") == "close"

    run(scenario())


def test_missing_schema_fails_at_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        listener = HttpListener(http_config(cda_schema=str(tmp_path / "none.xsd")), FakeJournal())
        with pytest.raises(ConfigError, match="CDA schema not found"):
            await listener.start()

    run(scenario())


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("http-pki"))


def _client(pki: Pki, cert: str | None = "client") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert == "client":
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    elif cert == "rogue":
        ctx.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    return ctx


def _tls(pki: Pki, require: bool) -> dict[str, Any]:
    return TlsServerConfig(
        cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca, require_client_cert=require
    ).model_dump(mode="json")


def test_https_with_client_certificate(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with serving(journal, tls=_tls(pki, require=True)) as listener:
            reply = await post(listener.port, TSH.read_bytes(), context=_client(pki))
            for cert in (None, "rogue"):
                with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                    await post(listener.port, TSH.read_bytes(), context=_client(pki, cert))
        assert reply.status == 202
        assert len(journal.entries) == 1

    run(scenario())


def test_https_client_certificate_optional(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(FakeJournal(), tls=_tls(pki, require=False)) as listener:
            reply = await post(listener.port, TSH.read_bytes(), context=_client(pki, None))
            assert reply.status == 202
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                await post(listener.port, TSH.read_bytes())  # plain HTTP to an HTTPS port

    run(scenario())


# --- through the real engine --------------------------------------------------------------

ENGINE_ROUTES = """
engine:
  data_dir: {data_dir}
listeners:
  - name: cda-drop
    type: filedrop
    path: {drop}
    interval: 50ms
    settle: 0
  - name: cda-http
    type: http
    bind: 127.0.0.1:0
destinations:
  - name: dcc
    type: mllp
    host: 127.0.0.1
    port: {dcc_port}
    ack_timeout: 2s
    retry: {{initial: 0.05s, max: 0.5s}}
routes:
  - name: lab-reports-to-dcc
    from: [cda-drop, cda-http]
    when:
      message_type: [CDA]
      sending_facility: ["1120459876"]
    to: [dcc]
"""


def _ack_for_cda(payload: bytes) -> bytes:
    from eai.cda import parse_cda

    control_id = parse_cda(payload, None).control_id
    return (
        b"MSH|^~\\&|DCC|DCC|EAI|EAI|20260101000000||ACK|A1|P|2.5\rMSA|AA|"
        + control_id.encode()
        + b"\r"
    )


def _messages(config: Path, *args: str) -> list[dict[str, Any]]:
    from click.testing import CliRunner

    from eai.cli import cli

    res = CliRunner().invoke(
        cli, ["messages", "list", "-c", str(config), "--json", *args], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    rows: list[dict[str, Any]] = json.loads(res.output)
    return rows


def _large_message_sink() -> Any:
    """An MLLP peer answering the CDA documents (it reads blocks up to 64 MiB: the CDA
    fixtures are far over the 64 KiB a plain asyncio reader takes)."""
    from standins.mllp import MllpPeer

    return MllpPeer(answer=_ack_for_cda)


def test_cda_intake_through_the_engine(tmp_path: Path) -> None:
    from tests.engine_harness import EngineThread

    drop = tmp_path / "drop"
    drop.mkdir()
    electro = CDA / "BIO-CR-BIO_2024.01_Electrophorese.xml"
    tlm = CDA / "TLM-CR_2022.01.xml"
    with _large_message_sink() as sink:
        config = tmp_path / "routes.yaml"
        config.write_text(
            ENGINE_ROUTES.format(data_dir=tmp_path / "var", drop=drop, dcc_port=sink.port)
        )
        with EngineThread(config) as eng:
            port = eng.port("cda-http")
            accepted = request(port, TSH.read_bytes())
            invalid = request(port, _invalid_tsh())
            (drop / "electro.xml").write_bytes(electro.read_bytes())
            (drop / "tlm.xml").write_bytes(tlm.read_bytes())
            assert sink.wait_for(lambda s: len(s.received) == 2, 20)
            assert sink.wait_for(lambda s: len(list((drop / "processed").iterdir())) == 2, 10)
            # the filtered one (nothing to deliver) may be routed in a later pipeline batch
            pipeline = eng.engine.pipeline
            assert pipeline is not None and sink.wait_for(lambda s: pipeline.processed == 3, 10)
    assert accepted.status == 202 and invalid.status == 422
    assert sorted(sink.received) == sorted([TSH.read_bytes(), electro.read_bytes()])
    rows = {r["id"]: r for r in _messages(config)}
    assert rows[accepted.body["message_id"]]["status"] == "processed"
    assert rows[accepted.body["message_id"]]["message_type"] == "CDA^11502-2"
    assert rows[invalid.body["message_id"]]["status"] == "rejected"
    by_listener = sorted((r["listener"], r["message_type"], r["status"]) for r in rows.values())
    assert by_listener == [
        ("cda-drop", "CDA^11502-2", "processed"),
        ("cda-drop", "CDA^85208-7", "filtered"),
        ("cda-http", "CDA^11502-2", "processed"),
        ("cda-http", "CDA^11502-2", "rejected"),
    ]
    delivered = [r for r in rows.values() if r["status"] == "processed"]
    assert all(d["deliveries"][0]["status"] == "delivered" for d in delivered)
    # the patient's INS (recordTarget/patientRole/id) finds the documents
    assert len(_messages(config, "--patient", "279035121518989")) == 3
