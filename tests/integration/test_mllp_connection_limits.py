"""Who may hold the MLLP listener's connections, over real sockets on 127.0.0.x.

Idle or trickling sockets must not lock the senders out (issue 16, point 6):
address allow-list, per-address cap, first-block deadline, eviction of the
oldest connection that has not had a message accepted. Clients bind source
addresses 127.0.0.2, .3, ... (all loopback on Linux) to play several peers.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from pydantic import ValidationError

from connectors.mllp import MllpListenerConfig
from connectors.mllp._framing import SB
from eai.config import TlsServerConfig
from tests._listeners import FakeJournal, run, running_listener
from tests._mllp import RawClient, msa
from tests._pki import Pki, make_pki
from tests.engine_harness import adt

pytestmark = pytest.mark.integration


async def connect_from(port: int, source: str) -> RawClient:
    return await RawClient.connect(port, local_addr=(source, 0))


async def wait_for(check: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_idle_sockets_filling_the_listener_do_not_lock_out_a_sender() -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(
            journal, max_connections=4, max_connections_per_peer=2, first_frame_timeout=60
        ) as listener:
            known = await connect_from(listener.port, "127.0.0.1")
            assert msa(await known.exchange(adt("KNOWN-1"))) == ("AA", "KNOWN-1")
            # Three silent sockets from two other addresses fill the listener (4).
            idle = [
                await connect_from(listener.port, source)
                for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3")
            ]
            await wait_for(lambda: len(listener.admission) == 4)
            # A sender still gets in: the oldest silent socket makes room, not the known one.
            sender = await connect_from(listener.port, "127.0.0.4")
            assert msa(await sender.exchange(adt("NEW-1"))) == ("AA", "NEW-1")
            assert await idle[0].closed_by_server(timeout=5.0)
            assert msa(await known.exchange(adt("KNOWN-2"))) == ("AA", "KNOWN-2")
            assert listener.admission.counts["evicted"] == 1
            # Once every connection is known, a newcomer is the one closed.
            for n, sock in enumerate(idle[1:]):
                assert msa(await sock.exchange(adt(f"LATE-{n}"))) == ("AA", f"LATE-{n}")
            async with await connect_from(listener.port, "127.0.0.5") as third:
                assert await third.closed_by_server(timeout=5.0)
            assert msa(await known.exchange(adt("KNOWN-3"))) == ("AA", "KNOWN-3")
            for sock in (known, sender, *idle):
                await sock.close()
        assert listener.admission.counts["refused_full"] == 1
        assert [e.control_id for e in journal.received] == [
            "KNOWN-1", "NEW-1", "KNOWN-2", "LATE-0", "LATE-1", "KNOWN-3",
        ]  # fmt: skip

    run(scenario())


def test_a_socket_trickling_one_byte_a_second_is_closed_at_the_first_frame_deadline() -> None:
    async def scenario() -> None:
        async with running_listener(
            FakeJournal(), first_frame_timeout=1.5, frame_timeout=60, idle_timeout=300
        ) as listener:
            loop = asyncio.get_running_loop()
            async with await RawClient.connect(listener.port) as slow:
                started = loop.time()
                closed = False
                for byte in (SB + adt("SLOW-1"))[:8]:  # 8 s at most, bounded
                    try:
                        await slow.send_raw(bytes([byte]))
                    except (ConnectionError, OSError):
                        closed = True
                        break
                    if slow.reader.at_eof():
                        closed = True
                        break
                    await asyncio.sleep(1.0)
                if not closed:
                    closed = await slow.closed_by_server(timeout=1.0)
                elapsed = loop.time() - started
            assert closed
            assert elapsed < 6.0  # closed by first_frame_timeout, long before frame_timeout
            # A silent socket goes the same way; a sender that talks at once is served.
            async with await RawClient.connect(listener.port) as silent:
                assert await silent.closed_by_server(timeout=5.0)
            async with await RawClient.connect(listener.port) as sender:
                assert msa(await sender.exchange(adt("FAST-1"))) == ("AA", "FAST-1")
                await asyncio.sleep(2.0)  # past first_frame_timeout: a known one stays
                assert msa(await sender.exchange(adt("FAST-2"))) == ("AA", "FAST-2")

    run(scenario())


def test_an_address_outside_allowed_networks_is_closed_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(
            journal, name="chu-x-adt", allowed_networks=["127.0.0.2/32", "10.0.0.0/8"]
        ) as listener:
            async with await connect_from(listener.port, "127.0.0.3") as outsider:
                try:
                    await outsider.send(adt("OUT-1"))
                except (ConnectionError, OSError):
                    pass
                assert await outsider.closed_by_server(timeout=5.0)
            async with await connect_from(listener.port, "127.0.0.2") as insider:
                assert msa(await insider.exchange(adt("IN-1"))) == ("AA", "IN-1")
        assert [e.control_id for e in journal.entries] == ["IN-1"]
        assert listener.admission.counts["refused_network"] == 1

    with caplog.at_level(logging.WARNING):
        run(scenario())
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "chu-x-adt" in record.getMessage() and "127.0.0.3" in record.getMessage()
    assert "allowed_networks" in record.getMessage()


def test_one_address_holds_at_most_max_connections_per_peer() -> None:
    async def scenario() -> None:
        async with running_listener(
            FakeJournal(), max_connections=16, max_connections_per_peer=2
        ) as listener:
            first = await connect_from(listener.port, "127.0.0.2")
            second = await connect_from(listener.port, "127.0.0.2")
            try:
                assert msa(await first.exchange(adt("P-1"))) == ("AA", "P-1")
                async with await connect_from(listener.port, "127.0.0.2") as third:
                    assert await third.closed_by_server(timeout=5.0)
                # Another address is not affected, nor the two already open.
                async with await connect_from(listener.port, "127.0.0.3") as other:
                    assert msa(await other.exchange(adt("Q-1"))) == ("AA", "Q-1")
                assert msa(await second.exchange(adt("P-2"))) == ("AA", "P-2")
            finally:
                await first.close()
                await second.close()
            # A place freed is usable again.
            await wait_for(lambda: listener.admission.peers("127.0.0.2") == 0)
            async with await connect_from(listener.port, "127.0.0.2") as again:
                assert msa(await again.exchange(adt("P-3"))) == ("AA", "P-3")
        assert listener.admission.counts["refused_per_peer"] == 1

    run(scenario())


def test_allowed_networks_are_checked_when_the_config_is_loaded() -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        MllpListenerConfig(name="x", bind="127.0.0.1:0", allowed_networks=["chu-x.local"])
    cfg = MllpListenerConfig(name="x", bind="127.0.0.1:0", allowed_networks=["10.1.2.0/24"])
    assert cfg.allowed_networks == ("10.1.2.0/24",)
    assert cfg.max_connections_per_peer == 8 and cfg.first_frame_timeout == 10.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_over_tls_the_address_is_checked_before_the_handshake_and_a_silent_one_evicted(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    tls = TlsServerConfig(cert=pki.server_cert, key=pki.server_key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))

    async def scenario() -> None:
        async with running_listener(
            FakeJournal(),
            tls=tls,
            max_connections=2,
            allowed_networks=["127.0.0.0/30"],  # .1 to .3; not .5
            first_frame_timeout=60,
        ) as listener:
            # Outside the networks: closed at accept, its ClientHello never read.
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                await RawClient.connect(
                    listener.port,
                    local_addr=("127.0.0.5", 0),
                    ssl=client_ctx,
                    server_hostname="localhost",
                    ssl_handshake_timeout=5,
                )
            # Two sockets that never start their handshake fill the listener (2) ...
            silent = [await connect_from(listener.port, s) for s in ("127.0.0.2", "127.0.0.3")]
            await wait_for(lambda: len(listener.admission) == 2)
            # ... and a TLS sender still gets in, in the place of the first.
            async with await RawClient.connect(
                listener.port,
                local_addr=("127.0.0.1", 0),
                ssl=client_ctx,
                server_hostname="localhost",
                ssl_handshake_timeout=5,
            ) as sender:
                assert msa(await sender.exchange(adt("TLS-1"))) == ("AA", "TLS-1")
            assert await silent[0].closed_by_server(timeout=5.0)
            for sock in silent:
                await sock.close()
        assert listener.admission.counts["refused_network"] == 1
        assert listener.admission.counts["evicted"] == 1

    with caplog.at_level(logging.WARNING):
        run(scenario())
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "127.0.0.5" in refused[0]
    assert not [
        r for r in caplog.records if "127.0.0.5" in r.getMessage() and "TLS" in r.getMessage()
    ]
