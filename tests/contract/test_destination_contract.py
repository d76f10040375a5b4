"""The destination contract, for every registered destination type, against its own peer.

Each test runs the real engine (on a thread; as a subprocess for kill -9) with one
listener that journals what the destination accepts, one destination pointed at the
peer (``tests/contract/conftest.py``: ``PEERS``) and one route between them, and
checks what the delivery workers promise whatever the transport: delivered, each
patient's messages in order; a transient failure retried; a permanent one dead-lettered
with the peer's reason in ``eai messages show``; connect and response timeouts end an
attempt as transient; mutual TLS; kill -9 mid-send: delivered at least once, in order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eai import registry
from eai.cli import cli
from tests._pki import Pki
from tests._proc import EaiProcess, listener_port
from tests.contract._peer import ContractPeer, black_hole, client_tls
from tests.contract.conftest import PEERS
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.contract, pytest.mark.timeout(120)]

FAST_RETRY = {"initial": "0.1s", "max": "0.3s", "jitter": 0}


def _routes(
    tmp: Path,
    peer: ContractPeer,
    *,
    port: int = 0,
    connect: float = 2.0,
    response: float = 2.0,
    destinations: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """routes.yaml: listener ``src`` -> destinations (default: ``peer``, the peer as is)."""
    base = {**peer.destination(), **peer.timeouts(connect, response), "retry": FAST_RETRY}
    dests = destinations or {"peer": {}}
    config = {
        "engine": {"data_dir": str(tmp / "var"), "database": f"sqlite:///{tmp}/var/eai.db"},
        "listeners": [{"name": "src", **peer.listener(port)}],
        "destinations": [{"name": name, **base, **extra} for name, extra in dests.items()],
        "routes": [
            # route: the keys a peer's destination needs on its route (fhir: map)
            {"name": "contract", "from": ["src"], "to": list(dests), **getattr(peer, "route", {})}
        ],
    }
    path = tmp / "routes.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def _messages(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def _deliveries(config: Path, destination: str = "peer") -> list[dict[str, Any]]:
    return [
        d for m in _messages(config) for d in m["deliveries"] if d["destination"] == destination
    ]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _all(config: Path, status: str, n: int, destination: str = "peer") -> Callable[[], bool]:
    def check() -> bool:
        rows = _deliveries(config, destination)
        return len(rows) == n and all(d["status"] == status for d in rows)

    return check


def _ordered(seen: list[str], sent: list[str]) -> bool:
    """``seen`` (what the peer took, re-sends included) has every id of ``sent`` and keeps
    its order: by first and by last occurrence."""
    mine = [i for i in seen if i in sent]
    first = list(dict.fromkeys(mine))
    last = list(reversed(dict.fromkeys(reversed(mine))))
    return first == sent and last == sent


def test_every_registered_destination_has_a_peer() -> None:
    """Every destination the plugins register (not the tests' own, ``tests._fhir_sink``)."""
    bundled = {
        kind
        for kind, spec in registry.destinations().items()
        if not spec.config_model.__module__.startswith("tests.")
    }
    assert bundled == set(PEERS)
    for kind, make in PEERS.items():
        assert make().destination_type == kind


def test_delivered_each_patient_in_order(peer: ContractPeer, tmp_path: Path) -> None:
    peer.start(tmp_path)
    config = _routes(tmp_path, peer)
    with EngineThread(config) as eng:
        sent = peer.feed(eng.port("src"), tmp_path, ["P1", "P2"], 3)
        _wait(_all(config, "delivered", 6), "6 deliveries")
    for ids in sent.values():
        assert _ordered(peer.accepted(), ids)
    assert all(d["attempts"] == 1 for d in _deliveries(config))


def test_transient_failure_is_retried_until_delivered(peer: ContractPeer, tmp_path: Path) -> None:
    peer.start(tmp_path)
    peer.behave("transient")
    config = _routes(tmp_path, peer)
    with EngineThread(config) as eng:
        sent = peer.feed(eng.port("src"), tmp_path, ["P1"], 1)
        _wait(lambda: peer.attempts() >= 2, "a second attempt")
        (row,) = _deliveries(config)
        assert row["status"] in ("pending", "retrying") and row["last_error"]
        peer.behave("accept")
        _wait(_all(config, "delivered", 1), "the delivery")
    (row,) = _deliveries(config)
    assert row["attempts"] >= 3
    assert peer.accepted() == sent["P1"]


def test_permanent_failure_is_dead_lettered_with_the_peers_reason(
    peer: ContractPeer, tmp_path: Path
) -> None:
    peer.start(tmp_path)
    peer.behave("permanent")
    config = _routes(tmp_path, peer)
    with EngineThread(config) as eng:
        peer.feed(eng.port("src"), tmp_path, ["P1"], 1)
        _wait(_all(config, "dead", 1), "the dead letter")
    ((message_id, row),) = [(m["id"], d) for m in _messages(config) for d in m["deliveries"]]
    assert row["attempts"] == 1 and peer.attempts() == 1
    shown = CliRunner().invoke(cli, ["messages", "show", "-c", str(config), str(message_id)])
    assert shown.exit_code == 0, shown.output
    assert peer.permanent_reason in shown.output
    assert peer.accepted() == []


def test_connect_timeout_ends_the_attempt_as_transient(peer: ContractPeer, tmp_path: Path) -> None:
    peer.start(tmp_path)
    with black_hole() as port:
        # at_port: the keys pointing the destination at a port (default: port)
        elsewhere = getattr(peer, "at_port", lambda p: {"port": p})(port)
        config = _routes(tmp_path, peer, connect=0.3, destinations={"peer": elsewhere})
        with EngineThread(config) as eng:
            peer.feed(eng.port("src"), tmp_path, ["P1"], 1)
            _wait(lambda: any(d["attempts"] >= 2 for d in _deliveries(config)), "2 attempts")
            (row,) = _deliveries(config)
    assert row["status"] in ("pending", "retrying") and row["last_error"]
    assert peer.attempts() == 0


def test_response_timeout_ends_the_attempt_as_transient(peer: ContractPeer, tmp_path: Path) -> None:
    peer.start(tmp_path)
    peer.behave("accept", delay=1.5)
    config = _routes(tmp_path, peer, response=0.4)
    with EngineThread(config) as eng:
        sent = peer.feed(eng.port("src"), tmp_path, ["P1"], 1)
        _wait(lambda: any(d["last_error"] for d in _deliveries(config)), "a timed-out attempt")
        (row,) = _deliveries(config)
        assert row["status"] in ("pending", "retrying")
        peer.behave("accept")
        _wait(_all(config, "delivered", 1), "the delivery")
    assert set(peer.accepted()) == set(sent["P1"])


def test_mutual_tls(peer: ContractPeer, tmp_path: Path, pki: Pki) -> None:
    """With the client certificate: delivered; without: refused by the peer, retried."""
    peer.start(tmp_path, tls=pki)
    config = _routes(
        tmp_path,
        peer,
        destinations={
            "peer": {"tls": client_tls(pki)},
            "nocert": {"tls": client_tls(pki, with_cert=False)},
        },
    )
    with EngineThread(config) as eng:
        sent = peer.feed(eng.port("src"), tmp_path, ["P1"], 2)
        _wait(_all(config, "delivered", 2), "the deliveries over mutual TLS")
        _wait(
            lambda: any(d["attempts"] >= 2 for d in _deliveries(config, "nocert")),
            "attempts without a client certificate",
        )
        assert all(d["status"] != "delivered" for d in _deliveries(config, "nocert"))
    assert peer.accepted() == sent["P1"]


def test_kill9_mid_send_then_restart(peer: ContractPeer, tmp_path: Path) -> None:
    """Delivered at least once, each patient's messages in the order they were sent."""
    peer.start(tmp_path)
    peer.behave("transient")  # everything is in the outbox before the first is taken
    port = listener_port()
    config = _routes(tmp_path, peer, port=port)
    with EaiProcess(config, port, tmp_path / "eai.log") as eng:
        eng.start()
        sent = peer.feed(port, tmp_path, ["P1", "P2"], 4)
        peer.behave("accept", delay=0.3)
        _wait(lambda: len(peer.accepted()) >= 2, "the first deliveries")
        eng.kill9()
        taken = len(peer.accepted())
        eng.start()
        _wait(lambda: all(i in peer.accepted() for ids in sent.values() for i in ids), "all")
    assert taken < 8, "the engine was killed after the last send: nothing was mid-send"
    for ids in sent.values():
        assert _ordered(peer.accepted(), ids), (peer.accepted(), ids)
