"""A sender that reuses a control id over a real MLLP socket (issue 16, point 1).

python-hl7's MLLP client -> eai (real engine, SQLite journal) -> a downstream MLLP sink,
all on 127.0.0.1. The second body under MSH-10 ``DUP-1`` is journaled, routed and marked;
true retransmissions of either (same bytes, or the same lines with other terminators)
get their stored ACK byte for byte and go nowhere.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from eai.cli import cli
from standins.mllp import MllpPeer, msh10
from tests._mllp import msa
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration


def _cli(path: object, *args: str) -> str:
    res = CliRunner().invoke(cli, [*args, "-c", str(path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_a_reused_control_id_is_journaled_routed_and_marked(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    first = adt("DUP-1", "IPP-FIRST")
    second = adt("DUP-1", "IPP-SECOND", trigger="A08")
    assert first != second
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)  # type: ignore[arg-type]
        with (
            caplog.at_level(logging.INFO),
            EngineThread(path) as eng,
            MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as client,
        ):
            ack1 = client.send_message(first)
            ack2 = client.send_message(second)
            assert msa(ack1) == msa(ack2) == ("AA", "DUP-1")
            assert ack2 != ack1, "the second body got the first one's stored ACK"
            # true retransmissions, with other line terminators: the stored ACKs, byte for byte
            assert client.send_message(second.replace(b"\r", b"\r\n")) == ack2
            assert client.send_message(first.replace(b"\r", b"\n")) == ack1
            assert client.send_message(first) == ack1
            assert sink.wait_for(lambda s: len(s.received) >= 2, 10)
            time.sleep(0.5)  # a retransmission routed by mistake would arrive by now
    assert sink.control_ids() == ["DUP-1", "DUP-1"]
    assert sink.received == [first, second]  # both bodies, forwarded as received

    rows = json.loads(_cli(path, "messages", "list", "--json"))
    assert len(rows) == 2
    assert all(r["deliveries"][0]["status"] == "delivered" for r in rows)
    first_id, second_id = sorted(r["id"] for r in rows)
    journey = _cli(path, "messages", "show", str(second_id))
    assert "control id reused" in journey and f"message {first_id} " in journey
    assert "control id reused" not in _cli(path, "messages", "show", str(first_id))
    [anomaly] = json.loads(_cli(path, "identity", "anomalies", "--json"))
    assert anomaly["facility"] == "CHU-X"
    assert anomaly["message_id"] == second_id and anomaly["control_id"] == "DUP-1"
    assert (anomaly["rule"], anomaly["severity"]) == ("MSH10-REUTILISE", "warn")

    logged = [r.getMessage() for r in caplog.records if r.name.startswith("connectors.mllp")]
    assert sum("reused with another content" in m for m in logged) == 1
    assert sum("retransmission" in m for m in logged) == 3
    assert "IPP-FIRST" not in caplog.text and "IPP-SECOND" not in caplog.text
    assert msh10(sink.received[1]) == "DUP-1"
