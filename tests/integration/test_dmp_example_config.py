"""examples/national-routes.yaml as shipped: `eai check` passes with its variables set, and
`eai run` on it publishes the national CR-BIO ORU to the stand-in DMP once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from eai.cli import cli
from tests._crbio import ORU
from tests._mllp import MllpSender, msa
from tests._national import EXAMPLE, NationalDmp, national_dmp
from tests._proc import EaiProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_the_national_example_publishes_to_the_standin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with national_dmp(tmp_path, monkeypatch, NationalDmp) as example:
        config, port, standin = example.config, example.port, example.standin
        with EaiProcess(config, port, tmp_path / "eai.log") as eng:
            eng.start()
            with MllpSender(port) as sender:
                code, _ = msa(sender.exchange(ORU))
            assert code == "AA"
            deadline = time.monotonic() + 60
            while not standin.published:
                assert time.monotonic() < deadline, eng.stderr()[-3000:]
                time.sleep(0.1)
            deadline = time.monotonic() + 30
            while True:
                listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
                assert listed.exit_code == 0, listed.output
                rows = [d for m in json.loads(listed.output) for d in m["deliveries"]]
                if rows and rows[0]["status"] == "delivered":
                    break
                assert time.monotonic() < deadline, rows
                time.sleep(0.2)
    assert len(standin.published) == 1
    assert [r.answered for r in standin.received] == ["success"]


def test_the_national_example_takes_its_ports_from_the_environment() -> None:
    from connectors.mllp.destination import MllpDestinationConfig
    from eai.config import load_config

    config = load_config(EXAMPLE, {"ADT_PORT": "3575", "RETURN_PORT": "3577"})
    (lab,) = [listener for listener in config.listeners if listener.name == "lab"]
    assert lab.bind == "127.0.0.1:3575"  # type: ignore[attr-defined]
    (back,) = [d for d in config.destinations if d.name == "lab-return"]
    assert isinstance(back, MllpDestinationConfig)
    assert (back.host, back.port) == ("127.0.0.1", 3577)
