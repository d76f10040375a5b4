"""End to end on 127.0.0.1: python-hl7's MLLP client -> eai -> a downstream MLLP sink."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from eai.cli import cli
from standins.mllp import MllpPeer, ack_for, msh10
from tests._mllp import msa
from tests.engine_harness import A01, EngineThread, adt, write_routes

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(path, *args):
    res = CliRunner().invoke(
        cli, [*args[:-1], "-c", str(path), args[-1]] if args else [], catch_exceptions=False
    )
    return res


def _json(path, *args):
    res = CliRunner().invoke(cli, [*args, "-c", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_fixture_acknowledged_then_delivered_byte_for_byte(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
            code, cid = msa(c.send_message(A01))
            assert (code, cid) == ("AA", "3975")
            assert sink.wait_for(lambda s: len(s.received) == 1, 10)
        assert sink.received[0] == A01  # forwarded exactly as received (\n separators kept)
    rows = _json(path, "messages", "list")
    assert rows[0]["status"] == "processed"
    assert rows[0]["control_id"] == "3975"
    assert rows[0]["deliveries"][0]["destination"] == "dcc"
    assert rows[0]["deliveries"][0]["status"] == "delivered"
    assert rows[0]["deliveries"][0]["attempts"] == 1


def test_order_per_patient_and_filtered_kept(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, connections=4)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
            sent = []
            for i in range(60):
                pid = f"P{i % 5}"
                cid = f"{pid}-{i:03d}"
                assert msa(c.send_message(adt(cid, pid)))[0] == "AA"
                sent.append(cid)
            assert msa(c.send_message(adt("A28-1", "P9", trigger="A28")))[0] == "AA"
            assert sink.wait_for(lambda s: len(s.received) >= 60, 20)
        got = sink.control_ids()
        assert sorted(got) == sorted(sent)
        for p in range(5):
            mine = [x for x in got if x.startswith(f"P{p}-")]
            assert mine == sorted(mine)
    filtered = _json(path, "messages", "list", "--status", "filtered")
    assert [m["control_id"] for m in filtered] == ["A28-1"]
    assert filtered[0]["deliveries"] == []


def test_downstream_down_then_up_nothing_lost_order_kept(tmp_path):
    port = _free_port()
    path = write_routes(tmp_path, port)
    with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
        sent = [f"D{i:03d}" for i in range(20)]
        for i, cid in enumerate(sent):
            assert msa(c.send_message(adt(cid, f"P{i % 3}")))[0] == "AA"
        import time

        time.sleep(1.0)  # several failed attempts
        q = _json(path, "queue", "list")
        assert q[0]["destination"] == "dcc" and q[0]["depth"] == 20
        with MllpPeer(port=port) as sink:
            assert sink.wait_for(lambda s: len(s.received) >= 20, 20)
            got = sink.control_ids()
    assert sorted(set(got)) == sent
    for p in range(3):
        mine = [x for i, x in enumerate(sent) if i % 3 == p]
        seen = [x for x in got if x in mine]
        assert [x for k, x in enumerate(seen) if x not in seen[:k]] == mine
    rows = _json(path, "messages", "list", "--limit", "100")
    assert all(m["deliveries"][0]["status"] == "delivered" for m in rows)
    assert max(m["deliveries"][0]["attempts"] for m in rows) > 1


def test_ar_dead_letters_and_chain_goes_on(tmp_path):
    def answer(p: bytes) -> bytes:
        return ack_for(p, "AR" if msh10(p) == "X1" else "AA")

    with MllpPeer(answer) as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
            for cid in ("X0", "X1", "X2"):
                assert msa(c.send_message(adt(cid, "SAME")))[0] == "AA"
            assert sink.wait_for(lambda s: len(s.received) >= 3, 10)
    assert sink.control_ids() == ["X0", "X1", "X2"]
    st = {m["control_id"]: m["deliveries"][0]["status"] for m in _json(path, "messages", "list")}
    assert st == {"X0": "delivered", "X1": "dead", "X2": "delivered"}


def test_retransmission_answered_with_stored_ack_and_not_routed_twice(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
            first = c.send_message(adt("R1"))
            second = c.send_message(adt("R1"))
            assert first == second
            assert sink.wait_for(lambda s: len(s.received) >= 1, 10)
            import time

            time.sleep(0.5)
    assert sink.control_ids() == ["R1"]
    assert len(_json(path, "messages", "list")) == 1


def test_cli_support_commands_while_engine_runs(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
            assert msa(c.send_message(adt("C1", "IPP42")))[0] == "AA"
            assert sink.wait_for(lambda s: len(s.received) == 1, 10)
            runner = CliRunner()
            assert runner.invoke(cli, ["queue", "pause", "dcc", "-c", str(path)]).exit_code == 0
            assert _json(path, "queue", "list")[0]["state"] == "paused"
            assert msa(c.send_message(adt("C2", "IPP42")))[0] == "AA"
            import time

            time.sleep(0.8)
            assert sink.control_ids() == ["C1"]
            assert runner.invoke(cli, ["queue", "resume", "dcc", "-c", str(path)]).exit_code == 0
            assert sink.wait_for(lambda s: len(s.received) == 2, 10)

            rows = _json(path, "messages", "list", "--patient", "IPP42")
            assert {r["control_id"] for r in rows} == {"C1", "C2"}
            assert _json(path, "messages", "list", "--patient", "279035121518989")  # the INS
            assert _json(path, "messages", "list", "--patient", "NOBODY") == []
            mid = rows[-1]["id"]

            dry = runner.invoke(cli, ["replay", str(mid), "--dry-run", "-c", str(path)])
            assert dry.exit_code == 0 and "would go to dcc" in dry.output
            time.sleep(0.3)
            assert len(sink.received) == 2
            rep = runner.invoke(cli, ["replay", str(mid), "--yes", "-c", str(path)])
            assert rep.exit_code == 0, rep.output
            assert sink.wait_for(lambda s: len(s.received) == 3, 10)

            did = rows[-1]["deliveries"][0]["id"]
            res = runner.invoke(cli, ["resend", str(did), "-c", str(path)])
            assert res.exit_code == 0 and "queued again" in res.output
            assert sink.wait_for(lambda s: len(s.received) == 4, 10)

            show = runner.invoke(cli, ["messages", "show", str(mid), "-c", str(path)])
            assert show.exit_code == 0
            for kind in (
                "received",
                "acknowledged",
                "parsed",
                "routed",
                "attempt",
                "replayed",
                "resent",
            ):
                assert kind in show.output
            assert "PAT-TROIS" not in show.output
            raw = runner.invoke(cli, ["messages", "show", str(mid), "--raw", "-c", str(path)])
            assert "PAT-TROIS" in raw.output
            again = runner.invoke(cli, ["messages", "show", str(mid), "--json", "-c", str(path)])
            kinds = [e["kind"] for e in json.loads(again.output)["events"]]
            assert "raw_viewed" in kinds
