"""Reloading a running engine whose route has ``map: auto`` after a mapping's
``default_for`` changed or a new mapping file appeared (the choice per message type is
cached; a reload forgets it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._proc import EaiProcess, eai_cli, listener_port
from tests._reload_mapping import MAPPINGS_DIR, mapping_routes, planned, send

pytestmark = pytest.mark.integration

MAPPING = """\
name: {name}
description: eai reload map auto test (removed by the test)
source: hl7v2
default_for:
  message_type: ["{message_type}"]
resources:
  - id: patient
    type: Patient
    rules:
      - set:
          name[+].family: {{value: "{name}"}}
"""


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """Two mapping files of the test's own (the first sorts before every shipped mapping,
    so ``map: auto`` prefers it when both take a message), removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    pair = (f"a0-reload-auto-{tag}", f"a1-reload-auto-{tag}")
    try:
        yield pair
    finally:
        for name in pair:
            (MAPPINGS_DIR / f"{name}.yaml").unlink(missing_ok=True)


def _write(name: str, message_type: str) -> None:
    text = MAPPING.format(name=name, message_type=message_type)
    (MAPPINGS_DIR / f"{name}.yaml").write_text(text)


def _reload(path: Path) -> None:
    done = eai_cli(path, "reload")
    assert done.returncode == 0, done.stdout + done.stderr


def test_map_auto_follows_new_mappings_and_changed_default_for_after_reload(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    first, second = names
    _write(second, "ADT^A01")
    port = listener_port()
    path = mapping_routes(tmp_path, port, "auto")
    with EaiProcess(path, port, tmp_path / "engine.log").start() as proc:
        send(port, "M1", "M1")
        assert planned(tmp_path, "M1")[0] == second

        _write(first, "ADT^A01")  # a new file, first by name: it takes ADT^A01 now
        _reload(path)
        send(port, "M2", "M2")
        assert planned(tmp_path, "M2")[0] == first

        _write(first, "ADT^A08")  # its default_for no longer takes A01
        _reload(path)
        send(port, "M3", "M3")
        assert planned(tmp_path, "M3")[0] == second
        assert proc.running
