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
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from eai.cli import cli
from standins.net import free_port
from tests._cisis import ORU
from tests._mllp import MllpSender, msa
from tests._mss_smtp import mss_smtp
from tests._paths import REPO
from tests._pki import make_pki, make_seal
from tests._proc import EaiProcess, listener_port

pytestmark = [pytest.mark.timeout(180)]

EXAMPLE = REPO / "examples" / "national-routes.yaml"
SENDER = "labo-auto@labo.mssante.fr"
PS = "adam.hoda@test-ci-sis.mssante.fr"
INS = "279035121518989"
PATIENT = f"{INS}@patient.mssante.fr"


def _mssante(config: Path) -> dict | None:
    listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [d for m in json.loads(listed.output) for d in m["deliveries"]]
    return next((d for d in rows if d["destination"] == "mssante"), None)


def _wait(condition, what: str, eng: EaiProcess, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}\n{eng.stderr()[-3000:]}"
        time.sleep(0.2)


def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_port: int, pki, port: int):
    cert, key, _ = make_seal()  # the example's DMP destination needs its seal to start
    (tmp_path / "seal.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "seal.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for name, value in {
        "DMP_URL": f"https://127.0.0.1:{free_port()}/repository",
        "DMP_TLS_CA": str(pki.ca),
        "DMP_TLS_CERT": str(pki.client_cert),
        "DMP_TLS_KEY": str(pki.client_key),
        "DMP_SIGN_CERT": str(tmp_path / "seal.crt"),
        "DMP_SIGN_KEY": str(tmp_path / "seal.key"),
        "ADT_PORT": str(port),
        "RETURN_PORT": str(free_port()),
        "MSS_SMTP_HOST": "127.0.0.1",
        "MSS_SMTP_PORT": str(smtp_port),
        "MSS_TLS_CA": str(pki.ca),
        "MSS_TLS_CERT": str(pki.client_cert),
        "MSS_TLS_KEY": str(pki.client_key),
        "MSS_SENDER": SENDER,
    }.items():
        monkeypatch.setenv(name, value)


def test_kill9_after_a_partial_acceptance_mails_each_recipient_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    port = listener_port()
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "national-routes.yaml"
    shutil.copy(EXAMPLE, config)
    with mss_smtp(pki) as inbox:
        _environment(tmp_path, monkeypatch, inbox.port, pki, port)
        inbox.answers[PATIENT] = "451 4.3.0 mailbox busy, try later"
        with EaiProcess(config, port, tmp_path / "eai.log") as eng:
            eng.start()
            with MllpSender(port) as sender:
                assert msa(sender.exchange(ORU))[0] == "AA"
            row = _wait(
                lambda: (d := _mssante(config)) and d["status"] == "retrying" and d,
                "the mssante delivery retrying after the patient's 451",
                eng,
            )
            assert [rcpt for _, rcpt, _ in inbox.mails] == [[PS]]
            assert "[mss-sent " in row["last_error"] and INS not in row["last_error"]
            eng.kill9()
            del inbox.answers[PATIENT]
            eng.start()
            done = _wait(
                lambda: (d := _mssante(config)) and d["status"] == "delivered" and d,
                "the mssante delivery delivered after the restart",
                eng,
            )
        received = [rcpt for _, rcpt, _ in inbox.mails]
    # the professional once (before the kill), the patient once (after it)
    assert received == [[PS], [PATIENT]], received
    assert done["attempts"] >= 2
    assert INS not in (tmp_path / "eai.log").read_text(errors="replace")
