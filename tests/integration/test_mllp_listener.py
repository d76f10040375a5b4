"""The MLLP listener over real sockets on 127.0.0.1: ACK codes, rejections, bad frames, limits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors.mllp._framing import EB, SB, frame
from eai.hl7 import parse
from tests._listeners import FakeJournal, run, running_listener
from tests._mllp import RawClient, err_code, msa
from tests._paths import HL7V2
from tests.engine_harness import adt

pytestmark = pytest.mark.integration

FIXTURE = HL7V2 / "pamfr_a01_admission.er7"


# -- accepted -----------------------------------------------------------------


def test_aa_only_after_ingest_returns() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                await client.send(adt("CTRL-1"))
                for _ in range(100):  # wait until the listener is inside ingest
                    if journal.calls:
                        break
                    await asyncio.sleep(0.01)
                assert journal.calls == 1
                with pytest.raises(TimeoutError):
                    await client.read_frame(timeout=0.3)
                journal.gate.set()
                ack = await client.read_frame()
        assert ack is not None
        assert msa(ack) == ("AA", "CTRL-1")
        [entry] = journal.received
        assert entry.payload == adt("CTRL-1")
        assert entry.dedup_key == "test|GAM|CHU-X|CTRL-1"
        assert entry.control_id == "CTRL-1"
        assert entry.message_type == "ADT^A01"
        assert (entry.sending_application, entry.sending_facility) == ("GAM", "CHU-X")
        assert entry.ack == ack
        assert entry.peer.startswith("127.0.0.1:")
        assert entry.received_at.tzinfo is not None

    run(scenario())


def test_national_fixture_is_accepted_byte_for_byte(caplog: pytest.LogCaptureFixture) -> None:
    raw = FIXTURE.read_bytes()

    async def scenario() -> bytes:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                ack = await client.exchange(raw)
        assert journal.received[0].payload == raw
        return ack

    with caplog.at_level(logging.DEBUG):
        ack = run(scenario())
    assert msa(ack) == ("AA", "3975")
    assert "3975" in caplog.text  # ids are logged ...
    for name in ("PAT-TROIS", "DOMINIQUE", "Breteuil", "19790328"):  # ... patient data never
        assert name not in caplog.text


def test_msh_only_message_is_accepted() -> None:
    payload = b"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|C1|P|2.5\r"

    async def scenario() -> bytes:
        async with running_listener(FakeJournal()) as listener:
            async with await RawClient.connect(listener.port) as client:
                return await client.exchange(payload)

    assert msa(run(scenario())) == ("AA", "C1")


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"], ids=["cr", "lf", "crlf"])
def test_segment_separators_accepted(sep: str) -> None:
    async def scenario() -> bytes:
        async with running_listener(FakeJournal()) as listener:
            async with await RawClient.connect(listener.port) as client:
                return await client.exchange(adt("SEP-1", sep=sep))

    assert msa(run(scenario())) == ("AA", "SEP-1")


def test_retransmission_gets_the_stored_ack() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                first = await client.exchange(adt("DUP-1"))
            async with await RawClient.connect(listener.port) as client:
                second = await client.exchange(adt("DUP-1"))
        assert second == first
        assert msa(first) == ("AA", "DUP-1")
        assert len(journal.received) == 1

    run(scenario())


# -- enhanced mode (MSH-15) ---------------------------------------------------


def test_enhanced_mode_answers_ca() -> None:
    async def scenario() -> bytes:
        async with running_listener(FakeJournal()) as listener:
            async with await RawClient.connect(listener.port) as client:
                return await client.exchange(adt("ENH-1", msh15="AL"))

    assert msa(run(scenario())) == ("CA", "ENH-1")


@pytest.mark.parametrize(
    ("msh15", "answered"), [("AL", True), ("SU", True), ("ER", False), ("NE", False)]
)
def test_enhanced_mode_success_answer_follows_msh15(msh15: str, answered: bool) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                await client.send(adt("E-1", msh15=msh15))
                if answered:
                    ack = await client.read_frame()
                    assert ack is not None and msa(ack) == ("CA", "E-1")
                else:
                    with pytest.raises(TimeoutError):
                        await client.read_frame(timeout=0.5)
                # Still journaled, and the connection still served.
                assert msa(await client.exchange(adt("E-2"))) == ("AA", "E-2")
        assert [e.control_id for e in journal.received] == ["E-1", "E-2"]

    run(scenario())


@pytest.mark.parametrize(
    ("msh15", "answered"), [("AL", True), ("SU", False), ("ER", True), ("NE", False)]
)
def test_enhanced_mode_refusal_answer_follows_msh15(msh15: str, answered: bool) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, allowed_senders=["OTHER"]) as listener:
            async with await RawClient.connect(listener.port) as client:
                await client.send(adt("R-1", msh15=msh15))
                if answered:
                    ack = await client.read_frame()
                    assert ack is not None and msa(ack) == ("CR", "R-1")
                else:
                    with pytest.raises(TimeoutError):
                        await client.read_frame(timeout=0.5)
        assert [e.control_id for e in journal.rejected] == ["R-1"]

    run(scenario())


# -- rejected (AR + ERR) ------------------------------------------------------

_GOOD_MSH = b"MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|"

REJECTED = {
    "no_msh": (b"PID|1||000003^^^CHU-X^PI||TEST^PATIENT\rPV1|1|I\r", "", "100"),
    "bad_encoding_chars": (
        b"MSH|^~|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|BAD-ENC|P|2.5\r",
        "BAD-ENC",
        "102",
    ),
    "wrong_version": (_GOOD_MSH + b"BAD-VER|P|3.0\rPID|1\r", "BAD-VER", "203"),
    "truncated_msh": (_GOOD_MSH + b"TRUNC-1|P", "TRUNC-1", "101"),
    "truncated_segment": (_GOOD_MSH + b"TRUNC-2|P|2.5\rPI", "TRUNC-2", "100"),
    "truncated_utf8": (_GOOD_MSH + b"TRUNC-3|P|2.5\rPID|1||\xc3", "TRUNC-3", "102"),
    "invalid_utf8": (
        adt("UTF-1", pid_name="TEST^PATIENT").replace(b"TEST^PATIENT", b"TEST^H\xe9L\xe8NE"),
        "UTF-1",
        "102",
    ),
    "wrong_field_separator": (
        b"MSHX^~\\&XGAMXCHU-XXDPIXCHU-XX2024XXADT^A01XSEP-1XPX2.5\r",
        "",
        "102",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_unacceptable_message_gets_ar_with_err(case: str) -> None:
    payload, control_id, code = REJECTED[case]

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                ack = await client.exchange(payload)
                # The connection keeps being served.
                assert msa(await client.exchange(adt("AFTER-1"))) == ("AA", "AFTER-1")
        assert msa(ack) == ("AR", control_id)
        assert err_code(ack) == code
        [entry] = journal.rejected
        assert entry.payload == payload
        assert entry.dedup_key is None
        assert entry.ack == ack
        assert entry.reject_reason
        assert entry.control_id == control_id

    run(scenario())


def test_sender_not_allowed_gets_ar_207() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, allowed_senders=["CHU-Y"]) as listener:
            async with await RawClient.connect(listener.port) as client:
                refused = await client.exchange(adt("S-1", facility="CHU-X"))
                accepted = await client.exchange(adt("S-2", facility="CHU-Y"))
        assert msa(refused) == ("AR", "S-1")
        assert err_code(refused) == "207"
        assert msa(accepted) == ("AA", "S-2")
        [entry] = journal.rejected
        assert entry.sending_facility == "CHU-X"
        assert "not allowed" in entry.reject_reason

    run(scenario())


# -- journal failures and bugs ------------------------------------------------


@pytest.mark.parametrize(("msh15", "code"), [("", "AE"), ("AL", "CE")])
def test_store_error_answers_ae_never_aa(msh15: str, code: str) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.fail = True
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                ack = await client.exchange(adt("STORE-1", msh15=msh15))
                journal.fail = False
                ok = await client.exchange(adt("STORE-2"))
        assert msa(ack) == (code, "STORE-1")
        assert err_code(ack) == "207"
        assert msa(ok) == ("AA", "STORE-2")

    run(scenario())


def test_unexpected_exception_answers_ae_and_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.crash = True
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                ack = await client.exchange(adt("BUG-1", pid_name="SECRET^NAME"))
                journal.crash = False
                ok = await client.exchange(adt("BUG-2"))
        assert msa(ack) == ("AE", "BUG-1")
        assert msa(ok) == ("AA", "BUG-2")

    with caplog.at_level(logging.DEBUG, logger="connectors"):
        run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info is not None
    assert "SECRET" not in caplog.text


# -- bad frames, while another connection is served ---------------------------


async def _good_traffic(port: int, stop: asyncio.Event, counter: list[int]) -> None:
    async with await RawClient.connect(port) as client:
        n = 0
        while not stop.is_set() and n < 500:
            n += 1
            ack = await client.exchange(adt(f"GOOD-{n}"))
            assert msa(ack) == ("AA", f"GOOD-{n}")
            counter[0] += 1
            await asyncio.sleep(0.005)


BAD_FRAMES = {
    # raw bytes, expected answer (None: no answer; the connection still serves afterwards)
    "no_start_block": (adt("NOSB-1") + EB + b"\r", None),
    "binary_junk": (bytes(range(12, 256)) * 20 + b"\x00\x01\x02", None),
    "empty_frame": (SB + EB + b"\r", ("AR", "")),
    "end_block_without_cr": (SB + adt("NOCR-1") + EB + b"X", ("AR", "NOCR-1")),
    "wrong_field_separator": (frame(b"MSH1^~\\&1GAM1CHU-X"), ("AR", "")),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frame_answered_and_others_served(case: str) -> None:
    raw, expected = BAD_FRAMES[case]

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            stop = asyncio.Event()
            counter = [0]
            good = asyncio.create_task(_good_traffic(listener.port, stop, counter))
            async with await RawClient.connect(listener.port) as bad:
                await bad.send_raw(raw)
                if expected is None:
                    with pytest.raises(TimeoutError):
                        await bad.read_frame(timeout=0.3)
                else:
                    ack = await bad.read_frame()
                    assert ack is not None and msa(ack) == expected
                # The same connection is served after the bad frame.
                assert msa(await bad.exchange(adt("NEXT-1"))) == ("AA", "NEXT-1")
            stop.set()
            await good
            assert counter[0] > 0
        assert not [e for e in journal.received if e.control_id in ("NOSB-1", "NOCR-1")]

    run(scenario())


def test_missing_end_block_then_close() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal) as listener:
            stop = asyncio.Event()
            counter = [0]
            good = asyncio.create_task(_good_traffic(listener.port, stop, counter))
            bad = await RawClient.connect(listener.port)
            await bad.send_raw(SB + adt("NOEB-1"))
            await bad.close()
            await asyncio.sleep(0.2)
            async with await RawClient.connect(listener.port) as again:
                assert msa(await again.exchange(adt("AGAIN-1"))) == ("AA", "AGAIN-1")
            stop.set()
            await good
            assert counter[0] > 0
        assert "NOEB-1" not in [e.control_id for e in journal.entries]

    run(scenario())


def test_oversize_frame_answered_ar_and_stored_truncated() -> None:
    limit = 2000
    big = adt("BIG-1").replace(b"\rPV1|", b"\rNTE|1||" + b"x" * 50_000 + b"\rPV1|")

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, max_message_bytes=limit) as listener:
            stop = asyncio.Event()
            counter = [0]
            good = asyncio.create_task(_good_traffic(listener.port, stop, counter))
            async with await RawClient.connect(listener.port) as bad:
                ack = await bad.exchange(big)
                assert msa(ack) == ("AR", "BIG-1")
                assert err_code(ack) == "102"  # v2.5 table 0357, with the limit in ERR-8
                assert f"{limit} bytes" in parse(ack).get("ERR-8")
                assert msa(await bad.exchange(adt("SMALL-1"))) == ("AA", "SMALL-1")
            stop.set()
            await good
            assert counter[0] > 0
        [entry] = journal.rejected
        assert entry.control_id == "BIG-1"
        assert entry.payload == big[:limit]
        assert str(limit) in entry.reject_reason

    run(scenario())


def test_oversize_head_kept_is_64k_at_most() -> None:
    big = adt("HUGE-1") + b"NTE|1||" + b"y" * 300_000 + b"\r"

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, max_message_bytes=200_000) as listener:
            async with await RawClient.connect(listener.port) as client:
                ack = await client.exchange(big)
        assert msa(ack) == ("AR", "HUGE-1")
        assert len(journal.rejected[0].payload) == 64 * 1024

    run(scenario())


# -- timeouts and limits ------------------------------------------------------


def test_slow_sender_closed_by_frame_timeout() -> None:
    async def scenario() -> None:
        async with running_listener(FakeJournal(), frame_timeout=1.0) as listener:
            async with await RawClient.connect(listener.port) as client:
                loop = asyncio.get_running_loop()
                started = loop.time()
                data = SB + adt("SLOW-1")
                closed = False
                for byte in data[:60]:  # 60 x 0.2 s = 12 s, far past the 1 s limit
                    try:
                        await client.send_raw(bytes([byte]))
                    except (ConnectionError, OSError):
                        closed = True
                        break
                    if client.reader.at_eof():
                        closed = True
                        break
                    await asyncio.sleep(0.2)
                if not closed:
                    closed = await client.closed_by_server(timeout=1.0)
                elapsed = loop.time() - started
            # Other connections are still served.
            async with await RawClient.connect(listener.port) as other:
                assert msa(await other.exchange(adt("FAST-1"))) == ("AA", "FAST-1")
        assert closed
        assert elapsed < 5.0

    run(scenario())


def test_idle_connection_closed() -> None:
    async def scenario() -> None:
        async with running_listener(FakeJournal(), idle_timeout=0.5) as listener:
            async with await RawClient.connect(listener.port) as client:
                assert msa(await client.exchange(adt("IDLE-1"))) == ("AA", "IDLE-1")
                assert await client.closed_by_server(timeout=5.0)

    run(scenario())


def test_connections_over_the_cap_are_closed() -> None:
    async def scenario() -> None:
        async with running_listener(FakeJournal(), max_connections=2) as listener:
            first = await RawClient.connect(listener.port)
            second = await RawClient.connect(listener.port)
            try:
                assert msa(await first.exchange(adt("CAP-1"))) == ("AA", "CAP-1")
                assert msa(await second.exchange(adt("CAP-2"))) == ("AA", "CAP-2")
                async with await RawClient.connect(listener.port) as third:
                    assert await third.closed_by_server(timeout=5.0)
                assert listener.connections == 2
                assert msa(await first.exchange(adt("CAP-3"))) == ("AA", "CAP-3")
                assert msa(await second.exchange(adt("CAP-4"))) == ("AA", "CAP-4")
            finally:
                await first.close()
                await second.close()
            # A slot freed is usable again.
            for _ in range(100):
                if listener.connections == 0:
                    break
                await asyncio.sleep(0.01)
            async with await RawClient.connect(listener.port) as fourth:
                assert msa(await fourth.exchange(adt("CAP-5"))) == ("AA", "CAP-5")

    run(scenario())


def test_50_connections_x_20_messages_all_aa() -> None:
    async def one_sender(port: int, number: int) -> list[tuple[str, str]]:
        async with await RawClient.connect(port) as client:
            return [msa(await client.exchange(adt(f"C{number:02d}-M{i:02d}"))) for i in range(20)]

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(
            journal, max_connections=64, max_connections_per_peer=64
        ) as listener:
            results = await asyncio.gather(*(one_sender(listener.port, n) for n in range(50)))
        for number, answers in enumerate(results):
            assert answers == [("AA", f"C{number:02d}-M{i:02d}") for i in range(20)]
        assert len(journal.received) == 1000

    run(scenario())


# -- stop ---------------------------------------------------------------------


def test_stop_lets_in_flight_message_get_its_ack() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()
        async with running_listener(journal) as listener:
            busy = await RawClient.connect(listener.port)
            idle = await RawClient.connect(listener.port)
            try:
                await busy.send(adt("STOP-1"))
                for _ in range(100):
                    if journal.calls:
                        break
                    await asyncio.sleep(0.01)
                stopping = asyncio.create_task(listener.stop(5.0))
                await asyncio.sleep(0.2)
                assert await idle.closed_by_server(timeout=2.0)
                assert not stopping.done()
                journal.gate.set()
                ack = await busy.read_frame()
                assert ack is not None and msa(ack) == ("AA", "STOP-1")
                assert await busy.closed_by_server(timeout=2.0)
                await stopping
            finally:
                await busy.close()
                await idle.close()

    run(scenario())


def test_stop_gives_up_after_grace() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        journal.gate = asyncio.Event()  # never set: ingest hangs
        async with running_listener(journal) as listener:
            async with await RawClient.connect(listener.port) as client:
                await client.send(adt("HANG-1"))
                for _ in range(100):
                    if journal.calls:
                        break
                    await asyncio.sleep(0.01)
                loop = asyncio.get_running_loop()
                started = loop.time()
                await listener.stop(0.3)
                assert loop.time() - started < 3.0
                assert await client.closed_by_server(timeout=2.0)

    run(scenario())


def test_endless_junk_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with running_listener(FakeJournal(), max_message_bytes=1000) as listener:
            async with await RawClient.connect(listener.port) as client:
                try:
                    for _ in range(10):
                        await client.send_raw(b"PID|1||SECRETNAME" * 40)
                except (ConnectionError, OSError):
                    pass
                assert await client.closed_by_server(timeout=5.0)

    with caplog.at_level(logging.INFO, logger="connectors"):
        run(scenario())
    assert "outside MLLP blocks" in caplog.text
    assert "SECRETNAME" not in caplog.text


def test_port_needs_start_and_stop_is_idempotent() -> None:
    async def scenario() -> None:
        from connectors.mllp import MllpListener, MllpListenerConfig

        listener = MllpListener(MllpListenerConfig(name="x", bind="127.0.0.1:0"), FakeJournal())
        with pytest.raises(RuntimeError):
            _ = listener.port
        await listener.stop(1.0)
        await listener.start()
        assert listener.port > 0
        async with await RawClient.connect(listener.port) as client:
            assert msa(await client.exchange(adt("RE-1"))) == ("AA", "RE-1")
        await listener.stop(1.0)
        await listener.stop(1.0)

    run(scenario())
