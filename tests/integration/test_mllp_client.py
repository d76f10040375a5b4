"""``send_messages`` (used by ``eai send``) and python-hl7's MLLP client as real peers."""

from __future__ import annotations

import asyncio

import hl7
import hl7.client
import pytest

from connectors.mllp import send_messages, split_file
from eai.errors import TransientDeliveryError
from tests._listeners import FakeJournal, run, running_listener
from tests._paths import HL7V2
from tests.engine_harness import adt

pytestmark = pytest.mark.integration

FIXTURE = HL7V2 / "pamfr_a01_admission.er7"


def test_python_hl7_mllp_client_against_the_listener() -> None:
    text = FIXTURE.read_text(encoding="utf-8").replace("\n", "\r")

    def blocking_peer(port: int) -> list[bytes]:
        answers = []
        with hl7.client.MLLPClient("127.0.0.1", port) as client:
            answers.append(client.send_message(text))
            answers.append(client.send_message(hl7.parse(adt("HL7LIB-2").decode())))
        return answers

    async def scenario() -> list[bytes]:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            answers = await asyncio.to_thread(blocking_peer, listener.port)
        assert [e.control_id for e in journal.received] == ["3975", "HL7LIB-2"]
        return answers

    answers = run(scenario())
    parsed = [hl7.parse(raw.strip(b"\x0b\x1c\r").decode()) for raw in answers]
    assert [str(m.segment("MSA")[1]) for m in parsed] == ["AA", "AA"]
    assert [str(m.segment("MSA")[2]) for m in parsed] == ["3975", "HL7LIB-2"]


def test_send_messages_over_one_connection() -> None:
    data = FIXTURE.read_bytes() + b"\n" + adt("FILE-2", sep="\n") + b"\n\n"
    payloads = split_file(data)
    assert len(payloads) == 2

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, allowed_senders=["CHU-X"]) as listener:
            answers = await send_messages(
                "127.0.0.1",
                listener.port,
                [*payloads, adt("FILE-3", facility="ELSEWHERE"), b"not hl7"],
            )
        assert [(a.code, a.control_id) for a in answers] == [
            ("AA", "3975"),
            ("AA", "FILE-2"),
            ("AR", "FILE-3"),
            ("AR", ""),
        ]
        assert "not allowed" in answers[2].text
        assert answers[0].raw.startswith(b"MSH|")
        assert len({e.peer for e in journal.entries}) == 1  # one connection
        # Separators were normalised before framing.
        assert journal.received[1].payload == adt("FILE-2")

    run(scenario())


def test_send_messages_to_a_closed_port() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        run(send_messages("127.0.0.1", port, [adt("MSG00001")], timeout=2))


def test_send_messages_times_out() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()  # ingest never returns: no ACK
        async with running_listener(journal) as listener:
            with pytest.raises(TransientDeliveryError, match="message 1 of 1: no ACK"):
                await send_messages("127.0.0.1", listener.port, [adt("MSG00001")], timeout=0.5)
            journal.gate.set()

    run(scenario())
