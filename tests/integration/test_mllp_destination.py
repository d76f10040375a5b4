"""The MLLP destination against a stub MLLP peer, and against the real listener."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from connectors.mllp import MllpDestination, MllpDestinationConfig
from connectors.mllp._framing import Frame, FrameDecoder, frame
from eai.errors import InputError, PermanentDeliveryError, TransientDeliveryError
from eai.hl7 import build_ack, read_header
from eai.messages import OutboxItem
from tests._listeners import FakeJournal, run, running_listener
from tests._mllp import msa
from tests.engine_harness import adt

pytestmark = pytest.mark.integration

# A stub behaviour: payload received -> (bytes to write back, delay before) or None (silence).
StubReply = tuple[bytes, float]
Answer = Callable[[bytes], StubReply | None]


def ack_for(
    code: str, *, control_id: str | None = None, error: str = ""
) -> Callable[[bytes], StubReply]:
    """Answer ``code``; ``control_id`` overrides MSA-2 (an ACK for another message)."""

    def answer(payload: bytes) -> tuple[bytes, float]:
        header = read_header(payload)
        if control_id is not None:
            header = dataclasses.replace(header, control_id=control_id)
        ack = build_ack(
            header,
            code,
            control_id="STUB",
            error=InputError(error, "207") if error else None,
        )
        return frame(ack), 0.0

    return answer


class Stub:
    """An MLLP peer on 127.0.0.1 answering each block with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.received: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.create_task(self._serve(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(10_000_000)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for event in decoder.feed(data):
                    if not isinstance(event, Frame):
                        continue
                    self.received.append(event.payload)
                    reply = self.answer(event.payload)
                    if reply is None:
                        continue
                    raw, delay = reply
                    if delay:
                        await asyncio.sleep(delay)
                    if not raw:
                        return  # close without answering
                    writer.write(raw)
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        await self.server.wait_closed()


@asynccontextmanager
async def stub(answer: Answer) -> AsyncIterator[Stub]:
    s = Stub(answer)
    s.server = await asyncio.start_server(s._accept, "127.0.0.1", 0)
    try:
        yield s
    finally:
        await s.stop()


@asynccontextmanager
async def destination(port: int, **fields: object) -> AsyncIterator[MllpDestination]:
    config = MllpDestinationConfig.model_validate(
        {"name": "peer", "host": "127.0.0.1", "port": port, **fields}
    )
    dest = MllpDestination(config)
    try:
        yield dest
    finally:
        await dest.close()


def item(control_id: str, delivery_id: int = 1) -> OutboxItem:
    return OutboxItem(
        delivery_id=delivery_id,
        message_id=delivery_id,
        destination="peer",
        payload=adt(control_id),
        control_id=control_id,
        patient_key="p1",
    )


@pytest.mark.parametrize("code", ["AA", "CA"])
def test_accepted(code: str) -> None:
    async def scenario() -> None:
        async with stub(ack_for(code)) as peer, destination(peer.port) as dest:
            result = await dest.send(item("D-1"))
            result2 = await dest.send(item("D-2", 2))
            assert result.detail == code
            assert msa(result.response) == (code, "D-1")
            assert msa(result2.response) == (code, "D-2")
            assert peer.received == [adt("D-1"), adt("D-2")]
            assert peer.connections == 1  # the connection is reused

    run(scenario())


@pytest.mark.parametrize("code", ["AE", "CE"])
def test_application_error_is_transient(code: str) -> None:
    async def scenario() -> None:
        async with stub(ack_for(code, error="busy")) as peer, destination(peer.port) as dest:
            with pytest.raises(TransientDeliveryError, match=code):
                await dest.send(item("D-1"))

    run(scenario())


@pytest.mark.parametrize("code", ["AR", "CR"])
def test_reject_is_permanent_with_err_text(code: str) -> None:
    async def scenario() -> None:
        answer = ack_for(code, error="unknown patient class")
        async with stub(answer) as peer, destination(peer.port) as dest:
            with pytest.raises(PermanentDeliveryError, match="unknown patient class"):
                await dest.send(item("D-1"))
            # The connection stays usable after a clean refusal.
            with pytest.raises(PermanentDeliveryError):
                await dest.send(item("D-2", 2))
            assert peer.connections == 1

    run(scenario())


def test_ack_for_another_message_is_transient_and_reconnects() -> None:
    async def scenario() -> None:
        calls = [0]

        def answer(payload: bytes) -> tuple[bytes, float]:
            calls[0] += 1
            if calls[0] == 1:
                return ack_for("AA", control_id="SOMEONE-ELSE")(payload)
            return ack_for("AA")(payload)

        async with stub(answer) as peer, destination(peer.port) as dest:
            with pytest.raises(TransientDeliveryError, match="another message"):
                await dest.send(item("D-1"))
            result = await dest.send(item("D-1"))
            assert msa(result.response) == ("AA", "D-1")
            assert peer.connections == 2

    run(scenario())


def test_timeout_closes_connection_and_late_ack_is_not_taken() -> None:
    async def scenario() -> None:
        calls = [0]

        def answer(payload: bytes) -> tuple[bytes, float]:
            calls[0] += 1
            raw, _ = ack_for("AA")(payload)
            return raw, (0.8 if calls[0] == 1 else 0.0)  # the first ACK comes late

        async with stub(answer) as peer, destination(peer.port, ack_timeout=0.3) as dest:
            with pytest.raises(TransientDeliveryError, match="no ACK"):
                await dest.send(item("T-1"))
            result = await dest.send(item("T-2", 2))
            assert msa(result.response) == ("AA", "T-2")
            assert peer.connections == 2
            await asyncio.sleep(0.7)  # the late ACK is written to the closed connection
            result = await dest.send(item("T-3", 3))
            assert msa(result.response) == ("AA", "T-3")

    run(scenario())


def test_never_answering_peer_times_out() -> None:
    async def scenario() -> None:
        async with stub(lambda payload: None) as peer:
            async with destination(peer.port, ack_timeout=0.3) as dest:
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(TransientDeliveryError):
                    await dest.send(item("N-1"))
                assert loop.time() - started < 3.0

    run(scenario())


def test_closed_port_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed at once: nobody listens there

    async def scenario() -> None:
        async with destination(port, connect_timeout=2) as dest:
            with pytest.raises(TransientDeliveryError, match="cannot connect"):
                await dest.send(item("C-1"))

    run(scenario())


def test_peer_closing_without_ack_is_transient() -> None:
    async def scenario() -> None:
        async with stub(lambda payload: (b"", 0.0)) as peer, destination(peer.port) as dest:
            with pytest.raises(TransientDeliveryError, match="closed"):
                await dest.send(item("E-1"))

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    [frame(b"this is not HL7"), frame(b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\r"), b"\x0bHALF\x1cX"],
    ids=["not_hl7", "no_msa", "bad_framing"],
)
def test_unparseable_ack_is_transient_and_reconnects(raw: bytes) -> None:
    async def scenario() -> None:
        calls = [0]

        def answer(payload: bytes) -> tuple[bytes, float]:
            calls[0] += 1
            return (raw, 0.0) if calls[0] == 1 else ack_for("AA")(payload)

        async with stub(answer) as peer, destination(peer.port) as dest:
            with pytest.raises(TransientDeliveryError):
                await dest.send(item("U-1"))
            result = await dest.send(item("U-1"))
            assert result.detail == "AA"
            assert peer.connections == 2

    run(scenario())


def test_oversize_ack_is_transient() -> None:
    async def scenario() -> None:
        def answer(payload: bytes) -> tuple[bytes, float]:
            raw, _ = ack_for("AA")(payload)
            return raw[:-2] + b"NTE|1||" + b"z" * 5000 + b"\r" + raw[-2:], 0.0

        async with stub(answer) as peer, destination(peer.port, max_ack_bytes=1000) as dest:
            with pytest.raises(TransientDeliveryError, match="oversize"):
                await dest.send(item("O-1"))

    run(scenario())


def test_peer_closing_idle_connection_is_not_a_failed_send() -> None:
    async def scenario() -> None:
        async with stub(ack_for("AA")) as peer, destination(peer.port) as dest:
            assert (await dest.send(item("I-1"))).detail == "AA"
            for writer in peer.writers:
                writer.close()
            await asyncio.sleep(0.2)
            assert (await dest.send(item("I-2", 2))).detail == "AA"
            assert peer.connections == 2

    run(scenario())


def test_pool_sends_concurrently_on_at_most_n_connections() -> None:
    async def scenario() -> None:
        def answer(payload: bytes) -> tuple[bytes, float]:
            raw, _ = ack_for("AA")(payload)
            return raw, 0.05

        async with stub(answer) as peer, destination(peer.port, connections=3) as dest:
            results = await asyncio.gather(*(dest.send(item(f"P-{i}", i)) for i in range(12)))
            assert [msa(r.response)[1] for r in results] == [f"P-{i}" for i in range(12)]
            assert peer.connections == 3

    run(scenario())


def test_cancelled_send_does_not_leak_its_slot() -> None:
    async def scenario() -> None:
        calls = [0]

        def answer(payload: bytes) -> tuple[bytes, float] | None:
            calls[0] += 1
            return None if calls[0] == 1 else ack_for("AA")(payload)

        async with stub(answer) as peer, destination(peer.port) as dest:
            task = asyncio.create_task(dest.send(item("X-1")))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            result = await dest.send(item("X-2", 2))
            assert msa(result.response) == ("AA", "X-2")
            assert peer.connections == 2

    run(scenario())


def test_against_the_real_listener() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            async with destination(listener.port) as dest:
                results = [await dest.send(item(f"R-{i}", i)) for i in range(5)]
        assert [msa(r.response) for r in results] == [("AA", f"R-{i}") for i in range(5)]
        assert [e.control_id for e in journal.received] == [f"R-{i}" for i in range(5)]

    run(scenario())
