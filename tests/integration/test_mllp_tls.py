"""MLLP over TLS with client-certificate verification; certificates made at test time."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.mllp import MllpDestination, MllpDestinationConfig, send_messages
from eai.cli import cli
from eai.config import TlsServerConfig
from eai.errors import TransientDeliveryError
from eai.messages import OutboxItem
from tests._listeners import FakeJournal, run, running_listener
from tests._mllp import msa
from tests._pki import Pki, make_pki
from tests.engine_harness import adt

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _client_context(pki: Pki, *, with_cert: bool = True, rogue: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if rogue:
        ctx.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    elif with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def _tls(pki: Pki, *, require: bool = True) -> TlsServerConfig:
    return TlsServerConfig(
        cert=pki.server_cert,
        key=pki.server_key,
        client_ca=pki.ca,
        require_client_cert=require,
    )


def test_client_with_certificate_accepted(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            answers = await send_messages(
                "127.0.0.1", listener.port, [adt("TLS-1")], tls=_client_context(pki)
            )
        assert [(a.code, a.control_id) for a in answers] == [("AA", "TLS-1")]
        assert journal.received[0].control_id == "TLS-1"

    run(scenario())


@pytest.mark.parametrize("rogue", [False, True], ids=["no_cert", "cert_from_other_ca"])
def test_client_without_valid_certificate_refused(pki: Pki, rogue: bool) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            ctx = _client_context(pki, with_cert=False, rogue=rogue)
            with pytest.raises(TransientDeliveryError):
                await send_messages("127.0.0.1", listener.port, [adt("TLS-2")], tls=ctx, timeout=5)
            # The listener still serves good clients.
            answers = await send_messages(
                "127.0.0.1", listener.port, [adt("TLS-3")], tls=_client_context(pki)
            )
        assert answers[0].code == "AA"
        assert [e.control_id for e in journal.entries] == ["TLS-3"]

    run(scenario())


def test_optional_client_certificate(pki: Pki) -> None:
    async def scenario() -> None:
        async with running_listener(FakeJournal(), tls=_tls(pki, require=False)) as listener:
            ctx = _client_context(pki, with_cert=False)
            answers = await send_messages("127.0.0.1", listener.port, [adt("OPT-1")], tls=ctx)
        assert answers[0].code == "AA"

    run(scenario())


def test_plain_tcp_client_gets_nothing_from_a_tls_listener(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            with pytest.raises(TransientDeliveryError):
                await send_messages("127.0.0.1", listener.port, [adt("PLAIN-1")], timeout=3)
        assert journal.entries == []

    run(scenario())


def test_destination_over_mutual_tls(pki: Pki) -> None:
    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            config = MllpDestinationConfig.model_validate(
                {
                    "name": "peer",
                    "host": "127.0.0.1",
                    "port": listener.port,
                    "tls": {
                        "ca": str(pki.ca),
                        "cert": str(pki.client_cert),
                        "key": str(pki.client_key),
                    },
                }
            )
            dest = MllpDestination(config)
            try:
                result = await dest.send(OutboxItem(1, 1, "peer", adt("DTLS-1"), "DTLS-1", "p1"))
            finally:
                await dest.close()
        assert msa(result.response) == ("AA", "DTLS-1")

    run(scenario())


def test_cli_send_over_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    """``eai send --ca --cert --key`` (the TLS options it shares with ``eai dicom``)."""
    msg = tmp_path / "a01.hl7"
    msg.write_bytes(adt("CLI-TLS"))
    runner = CliRunner()

    async def scenario() -> None:
        journal = FakeJournal()
        async with running_listener(journal, tls=_tls(pki)) as listener:
            address = f"127.0.0.1:{listener.port}"
            mutual = ["--ca", str(pki.ca), "--cert", str(pki.client_cert)]
            mutual += ["--key", str(pki.client_key)]
            ok = await asyncio.to_thread(
                runner.invoke, cli, ["send", "--timeout", "5", *mutual, address, str(msg)]
            )
            assert ok.exit_code == 0, ok.output
            assert ok.output.startswith("MSA|AA|CLI-TLS")
            # without the client certificate the listener refuses the handshake
            refused = await asyncio.to_thread(
                runner.invoke,
                cli,
                ["send", "--timeout", "5", "--ca", str(pki.ca), address, str(msg)],
            )
            assert refused.exit_code != 0
            # a key without its certificate is a usage error
            usage = await asyncio.to_thread(
                runner.invoke, cli, ["send", "--key", str(pki.client_key), address, str(msg)]
            )
            assert usage.exit_code == 2 and "--key needs --cert" in usage.output
        assert [e.control_id for e in journal.received] == ["CLI-TLS"]

    run(scenario())
