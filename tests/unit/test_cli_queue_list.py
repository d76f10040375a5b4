"""``eai queue list`` shows every state of a destination's deliveries, HELD included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from eai.cli import _support_cmds, cli
from eai.store import QueueView


def test_queue_list_shows_held_beside_pending_retrying_and_dead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    views = [QueueView("dmp", "active", 3, 1, 2, 5, 42.0, held=4)]
    asked: list[list[str]] = []

    def stats(engine: Any, names: list[str]) -> list[QueueView]:
        asked.append(list(names))
        return views

    config = SimpleNamespace(destinations=[SimpleNamespace(name="dmp")])
    store = SimpleNamespace(engine=SimpleNamespace(dispose=lambda: None))
    monkeypatch.setattr(_support_cmds, "read_config", lambda path: config)
    monkeypatch.setattr(_support_cmds, "open_store", lambda config: store)
    monkeypatch.setattr(_support_cmds.journal, "queue_stats", stats)

    result = CliRunner().invoke(cli, ["queue", "list"])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split() == [
        "DESTINATION", "STATE", "DEPTH", "RETRYING", "HELD", "DEAD", "DELIVERED", "OLDEST",
        "PENDING",
    ]  # fmt: skip
    assert row.split() == ["dmp", "active", "3", "1", "4", "2", "5", "42s"]
    assert asked == [["dmp"]]
