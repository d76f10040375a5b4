"""eai.net on real sockets and files: TLS contexts, StreamServer, handshake, close, peer names."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest

from eai.config import TlsClientConfig, TlsServerConfig
from eai.errors import ConfigError
from eai.net import (
    StreamServer,
    client_context,
    close_stream,
    peer_host,
    peer_name,
    server_context,
    server_handshake,
)
from tests._pki import Pki, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- TLS contexts ---------------------------------------------------------------


def test_server_context_modes(pki: Pki) -> None:
    plain = server_context(TlsServerConfig(cert=pki.server_cert, key=pki.server_key))
    optional = server_context(
        TlsServerConfig(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca)
    )
    required = server_context(
        TlsServerConfig(
            cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca, require_client_cert=True
        )
    )
    assert [c.verify_mode for c in (plain, optional, required)] == [
        ssl.CERT_NONE,
        ssl.CERT_OPTIONAL,
        ssl.CERT_REQUIRED,
    ]
    assert {c.minimum_version for c in (plain, optional, required)} == {ssl.TLSVersion.TLSv1_2}


def test_client_context_verifies_the_server(pki: Pki) -> None:
    ctx = client_context(TlsClientConfig(ca=pki.ca, cert=pki.client_cert, key=pki.client_key))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_unreadable_files_are_config_errors_naming_them(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="nope.pem"):
        server_context(TlsServerConfig(cert=missing, key=pki.server_key))
    with pytest.raises(ConfigError, match="CA bundle"):
        client_context(TlsClientConfig(ca=missing))


# -- StreamServer, handshake, close -----------------------------------------------


def _run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_stream_server_binds_names_peers_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str]] = []

    async def scenario() -> None:
        server = StreamServer("t")
        with pytest.raises(RuntimeError):
            _ = server.port
        assert not server.close()  # not started: nothing to finish
        tasks: list[asyncio.Task[None]] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(await reader.readexactly(4))
                await writer.drain()
                await asyncio.sleep(60)  # busy past the grace: cancelled by finish()
            finally:
                await close_stream(writer)

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append((peer_name(writer), peer_host(writer)))
            tasks.append(asyncio.create_task(serve(reader, writer)))

        await server.start(on_connection, "127.0.0.1", 0)
        assert server.started and server.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert server.close()
        await server.finish(tasks, 0.1, "connection(s)")
        assert not server.started
        assert tasks[0].cancelled()
        await close_stream(writer)

    with caplog.at_level(logging.INFO, logger="eai.net"):
        _run(scenario())
    [(name, host)] = seen
    assert host == "127.0.0.1" and name.startswith("127.0.0.1:")
    messages = [r.getMessage() for r in caplog.records]
    assert "listener t: 1 connection(s) still busy after 0.1 s, closed" in messages
    assert messages[-1] == "listener t: stopped"


def test_server_handshake_succeeds_and_fails(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    results: list[bool] = []

    async def scenario() -> None:
        finished = asyncio.Event()
        ctx = server_context(
            TlsServerConfig(
                cert=pki.server_cert,
                key=pki.server_key,
                client_ca=pki.ca,
                require_client_cert=True,
            )
        )

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            results.append(
                await server_handshake(writer, ctx, 5.0, listener="t", peer=peer_name(writer))
            )
            await close_stream(writer)
            if len(results) == 2:
                finished.set()

        tasks: set[asyncio.Task[None]] = set()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tasks.add(asyncio.create_task(serve(reader, writer)))

        server = StreamServer("t")
        await server.start(on_connection, "127.0.0.1", 0)
        good = client_context(TlsClientConfig(ca=pki.ca, cert=pki.client_cert, key=pki.client_key))
        _, w = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=good, server_hostname="localhost"
        )
        rogue = client_context(TlsClientConfig(ca=pki.ca, cert=pki.rogue_cert, key=pki.rogue_key))
        try:
            _, w2 = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=rogue, server_hostname="localhost"
            )
            await close_stream(w2)
        except (OSError, ssl.SSLError):
            pass  # TLS 1.3: the refusal may come at the client's first read, or here
        await asyncio.wait_for(finished.wait(), 10)
        await close_stream(w)
        server.close()
        await server.finish(tasks, 1.0, "connection(s)")

    with caplog.at_level(logging.WARNING, logger="eai.net"):
        _run(scenario())
    assert sorted(results) == [False, True]
    [record] = [r for r in caplog.records if "handshake" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("listener t: TLS handshake with 127.0.0.1:")


def test_close_stream_survives_a_vanished_peer() -> None:
    async def scenario() -> None:
        accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result(writer)

        server = StreamServer("t")
        await server.start(on_connection, "127.0.0.1", 0)
        _, client = await asyncio.open_connection("127.0.0.1", server.port)
        client.transport.abort()  # reset, not a clean close
        writer = await accepted
        await close_stream(writer)
        await close_stream(writer)  # twice: still no error
        assert writer.is_closing()
        server.close()
        await server.finish([], 1.0, "connection(s)")

    _run(scenario())
