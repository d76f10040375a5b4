"""examples/national-routes.yaml as shipped: `eai check` passes with its variables set, and
`eai run` on it publishes the national CR-BIO ORU to the stand-in DMP once."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from eai.cli import cli
from standins.dmp import DmpStandin
from tests._mllp import MllpSender, msa
from tests._paths import HL7V2, REPO
from tests._pki import make_pki, make_seal
from tests._proc import EaiProcess, listener_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EXAMPLE = REPO / "examples" / "national-routes.yaml"
ORU = b"\r".join((HL7V2 / "oru_r01_crbio_init.hl7").read_bytes().splitlines())


def test_the_national_example_publishes_to_the_standin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    cert, key, ca = make_seal()
    seal_cert, seal_key, seal_ca = (tmp_path / n for n in ("seal.crt", "seal.key", "seal-ca.crt"))
    seal_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    seal_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    seal_ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    port = listener_port()
    monkeypatch.chdir(tmp_path)  # the example's data dir is relative: ./var/national
    config = tmp_path / "national-routes.yaml"
    shutil.copy(EXAMPLE, config)
    with DmpStandin(pki.server_cert, pki.server_key, pki.ca, seal_ca) as standin:
        for name, value in {
            "ADT_PORT": str(port),
            "DMP_URL": standin.url,
            "DMP_REGISTRY_URL": standin.registry_url,
            "DMP_TLS_CA": str(pki.ca),
            "DMP_TLS_CERT": str(pki.client_cert),
            "DMP_TLS_KEY": str(pki.client_key),
            "DMP_SIGN_CERT": str(seal_cert),
            "DMP_SIGN_KEY": str(seal_key),
            # the example's MSSanté destination loads its certificate at start too
            "MSS_TLS_CA": str(pki.ca),
            "MSS_TLS_CERT": str(pki.client_cert),
            "MSS_TLS_KEY": str(pki.client_key),
        }.items():
            monkeypatch.setenv(name, value)
        checked = CliRunner().invoke(cli, ["check", "-c", str(config)])
        assert checked.exit_code == 0, checked.output
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
