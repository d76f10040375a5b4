"""kill -9 between a partial acceptance and the retry: each MSSanté recipient gets the mail once.

The national example's MSSanté destination mails the CR-BIO ORU as two mails (the
professional of PRT RCT, the patient's mailbox). The operator's server (aiosmtpd with
STARTTLS and a client certificate) takes the professional's mail and answers 451 to the
patient's: the delivery is retrying, its attempt's detail records the part accepted. The
engine is killed with SIGKILL, the server is mended, the engine restarted: the retry
mails the patient only, and the professional has received the document exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eai.cli import cli
from standins.net import free_port
from tests._cisis import ORU
from tests._mllp import MllpSender, msa
from tests._mss_smtp import mss_smtp
from tests._national import copy_example, set_environment, write_seal
from tests._pki import make_pki
from tests._proc import EaiProcess, listener_port, wait_until

pytestmark = [pytest.mark.timeout(180)]

SENDER = "labo-auto@labo.mssante.fr"
PS = "adam.hoda@test-ci-sis.mssante.fr"
INS = "279035121518989"
PATIENT = f"{INS}@patient.mssante.fr"


def _mssante(config: Path) -> dict | None:
    listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [d for m in json.loads(listed.output) for d in m["deliveries"]]
    return next((d for d in rows if d["destination"] == "mssante"), None)


def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_port: int, pki, port: int):
    set_environment(
        monkeypatch,
        pki,
        write_seal(tmp_path),  # the example's DMP destination needs its seal to start
        port=port,
        return_port=free_port(),
        dmp_url=f"https://127.0.0.1:{free_port()}/repository",
        MSS_SMTP_HOST="127.0.0.1",
        MSS_SMTP_PORT=str(smtp_port),
        MSS_SENDER=SENDER,
    )


def test_kill9_after_a_partial_acceptance_mails_each_recipient_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    port = listener_port()
    config = copy_example(tmp_path, monkeypatch)
    with mss_smtp(pki) as inbox:
        _environment(tmp_path, monkeypatch, inbox.port, pki, port)
        inbox.answers[PATIENT] = "451 4.3.0 mailbox busy, try later"
        with EaiProcess(config, port, tmp_path / "eai.log") as eng:
            eng.start()
            with MllpSender(port) as sender:
                assert msa(sender.exchange(ORU))[0] == "AA"
            row = wait_until(
                lambda: (d := _mssante(config)) and d["status"] == "retrying" and d,
                "the mssante delivery retrying after the patient's 451",
                eng,
            )
            assert [rcpt for _, rcpt, _ in inbox.mails] == [[PS]]
            assert "[mss-sent " in row["last_error"] and INS not in row["last_error"]
            eng.kill9()
            del inbox.answers[PATIENT]
            eng.start()
            done = wait_until(
                lambda: (d := _mssante(config)) and d["status"] == "delivered" and d,
                "the mssante delivery delivered after the restart",
                eng,
            )
        received = [rcpt for _, rcpt, _ in inbox.mails]
    # the professional once (before the kill), the patient once (after it)
    assert received == [[PS], [PATIENT]], received
    assert done["attempts"] >= 2
    assert INS not in (tmp_path / "eai.log").read_text(errors="replace")
