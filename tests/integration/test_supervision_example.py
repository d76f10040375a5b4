"""examples/supervision-routes.yaml as shipped, run by `eai run` with its variables set: with
ALERT_AFTER=5s, a DCC that refuses connections while 20 messages wait gives each recipient
(the regional team, CHU-X's contact) one mail naming dcc within a minute, and one more,
"resolved", once the DCC is back and the queue drained; nothing else."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from eai.cli import cli
from standins.mllp import MllpPeer
from standins.net import free_port
from tests._mllp import MllpSender, msa
from tests._paths import REPO
from tests._proc import EaiProcess, listener_port
from tests._smtp import smtp_server
from tests.engine_harness import adt

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXAMPLE = REPO / "examples" / "supervision-routes.yaml"
REGION = "exploitation@grades.test"
CHU_X = "interop@chu-x.test"


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_the_supervision_example_mails_once_when_dcc_fails_and_once_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, dcc_port = listener_port(), free_port()
    monkeypatch.chdir(tmp_path)  # the example's data dir is relative: ./var/supervision
    config = tmp_path / "supervision-routes.yaml"
    shutil.copy(EXAMPLE, config)
    with smtp_server() as inbox:
        for name, value in {
            "ADT_PORT": str(port),
            "CONSOLE_PORT": str(free_port()),  # the example serves the console too
            "DCC_PORT": str(dcc_port),
            "SMTP_PORT": str(inbox.port),
            "ALERT_TO": REGION,
            "CHU_X_CONTACT": CHU_X,
            "ALERT_AFTER": "5s",
        }.items():
            monkeypatch.setenv(name, value)
        checked = CliRunner().invoke(cli, ["check", "-c", str(config)])
        assert checked.exit_code == 0, checked.output

        def mails(who: str) -> list[EmailMessage]:
            return [m for m in inbox.mails if m["To"] == who]

        with EaiProcess(config, port, tmp_path / "eai.log") as eng:
            eng.start()
            sent_at = time.monotonic()
            with MllpSender(port) as sender:
                for i in range(20):
                    code, _ = msa(sender.exchange(adt(f"S{i}", patient=f"{i:06d}")))
                    assert code == "AA"
            assert _wait(lambda: all(mails(w) for w in (REGION, CHU_X)), 60), eng.stderr()[-3000:]
            assert time.monotonic() - sent_at < 60
            with MllpPeer(port=dcc_port) as dcc:
                assert _wait(lambda: len(dcc.control_ids()) == 20, 90)
                assert _wait(lambda: all(len(mails(w)) == 2 for w in (REGION, CHU_X)), 90)
                time.sleep(6)  # an evaluation or more after: nothing else
            listed = CliRunner().invoke(cli, ["alerts", "list", "-c", str(config), "--json"])
        assert listed.exit_code == 0, listed.output
        assert len(inbox.mails) == 4
        for who in (REGION, CHU_X):
            firing, resolved = mails(who)
            assert "dcc" in str(firing["Subject"]) and "Alerte" in str(firing["Subject"])
            assert "dcc" in str(resolved["Subject"]) and "Résolue" in str(resolved["Subject"])
            assert "20 message(s) en attente" in firing.get_content()
    rows = {(r["rule"], r["scope"]): r for r in json.loads(listed.output)["alerts"]}
    assert rows[("destination_failing", "destination:dcc")]["state"] == "resolved"
    assert [r for r in rows.values() if r["state"] == "firing"] == []
