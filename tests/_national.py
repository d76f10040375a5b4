"""The set-up shared by the DMP and MSSanté tests: the DMP seal written to files, the DMP
stand-in with its PKI (:func:`dmp_standin`); for the tests that run
examples/national-routes.yaml, the example copied into the test's directory (its data dir is
relative), its environment (ports, DMP_*, MSS_* with the test PKI), `eai check`, and the
whole of it around a running DMP stand-in (:func:`national_dmp`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from eai.cli import cli
from standins.dmp import DmpStandin
from tests._mllp import MllpSender, msa
from tests._paths import REPO
from tests._pki import Pki, make_pki, make_seal
from tests._proc import EaiProcess, listener_port

EXAMPLE = REPO / "examples" / "national-routes.yaml"


@dataclass(frozen=True)
class Seal:
    """The DMP signing identity (the seal) and its CA, as PEM files."""

    cert: Path
    key: Path
    ca: Path


def write_seal(directory: Path) -> Seal:
    """A fresh seal written to ``directory``/seal.crt, seal.key and seal-ca.crt."""
    cert, key, ca = make_seal()
    seal = Seal(directory / "seal.crt", directory / "seal.key", directory / "seal-ca.crt")
    seal.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    seal.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    seal.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return seal


def copy_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example copied into ``tmp_path``, the working directory (./var/national)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "national-routes.yaml"
    shutil.copy(EXAMPLE, config)
    return config


def set_environment(
    monkeypatch: pytest.MonkeyPatch,
    pki: Pki,
    seal: Seal,
    *,
    port: int,
    return_port: int,
    dmp_url: str,
    **more: str,
) -> None:
    """The example's variables: both destinations' certificates from the test PKI (each
    loads them at start), the seal, the ports; ``more`` adds or overrides variables."""
    values = {
        "ADT_PORT": str(port),
        "RETURN_PORT": str(return_port),
        "DMP_URL": dmp_url,
        "DMP_TLS_CA": str(pki.ca),
        "DMP_TLS_CERT": str(pki.client_cert),
        "DMP_TLS_KEY": str(pki.client_key),
        "DMP_SIGN_CERT": str(seal.cert),
        "DMP_SIGN_KEY": str(seal.key),
        "MSS_TLS_CA": str(pki.ca),
        "MSS_TLS_CERT": str(pki.client_cert),
        "MSS_TLS_KEY": str(pki.client_key),
        **more,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def eai_check(config: Path) -> None:
    """`eai check` passes on ``config``."""
    checked = CliRunner().invoke(cli, ["check", "-c", str(config)])
    assert checked.exit_code == 0, checked.output


@dataclass(frozen=True)
class DmpPeer:
    """A running DMP stand-in, the test PKI it serves and trusts, the seal it checks."""

    pki: Pki
    standin: DmpStandin
    seal: Seal

    def routes(self, tmp: Path, **destination: Any) -> Path:
        """``tmp``/routes.yaml: the MLLP listener ``lab`` (test feed) routing what has the
        fact DESTDMP=Y to the destination ``dmp`` on the stand-in; ``destination`` adds or
        overrides its settings (None drops one)."""
        settings: dict[str, Any] = {
            "name": "dmp",
            "type": "dmp",
            "url": self.standin.url,
            "registry_url": self.standin.registry_url,
            "tls": {
                "ca": str(self.pki.ca),
                "cert": str(self.pki.client_cert),
                "key": str(self.pki.client_key),
            },
            "sign_cert": str(self.seal.cert),
            "sign_key": str(self.seal.key),
            "source_id": "1.2.250.1.999.1.1",
            "structure_id": "1120459876",
            "activity_sector": "SA25^1.2.250.1.71.4.2.4",
            "homologation_id": "HOMOL-TEST",
            **destination,
        }
        config = {
            "engine": {"data_dir": str(tmp / "var"), "database": f"sqlite:///{tmp}/var/eai.db"},
            "listeners": [
                {"name": "lab", "type": "mllp", "bind": "127.0.0.1:0", "test_feed": True}
            ],
            "destinations": [{k: v for k, v in settings.items() if v is not None}],
            "routes": [
                {
                    "name": "dmp",
                    "from": ["lab"],
                    "when": {"fact": "DESTDMP", "equals": "Y"},
                    "to": ["dmp"],
                }
            ],
        }
        path = tmp / "routes.yaml"
        path.write_text(json.dumps(config, indent=1))
        return path


@contextmanager
def dmp_standin(tmp_path: Path) -> Iterator[DmpPeer]:
    """The DMP stand-in (repository and registry) over mutual TLS, and the files an engine
    needs to reach it: the test PKI under ``tmp_path``/pki and a fresh seal."""
    pki = make_pki(tmp_path / "pki")
    seal = write_seal(tmp_path)
    with DmpStandin(pki.server_cert, pki.server_key, pki.ca, seal.ca) as standin:
        yield DmpPeer(pki, standin, seal)


@dataclass(frozen=True)
class NationalDmp:
    """The checked example, its listener and return ports, the running DMP stand-in, the
    test's directory; the engine on it, what to send it and the journeys it records."""

    config: Path
    port: int
    return_port: int
    standin: DmpStandin
    pki: Pki
    tmp: Path

    def engine(self) -> EaiProcess:
        return EaiProcess(self.config, self.port, self.tmp / "eai.log")

    def send(self, payload: bytes) -> None:
        """``payload`` over MLLP to the example's listener, acknowledged AA."""
        with MllpSender(self.port) as sender:
            code, _ = msa(sender.exchange(payload))
        assert code == "AA"

    def journeys(self) -> dict[str, dict[str, Any]]:
        """Each message's journey (``messages show``), by its control id."""
        listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(self.config), "--json"])
        assert listed.exit_code == 0, listed.output
        out: dict[str, dict[str, Any]] = {}
        for message in json.loads(listed.output):
            shown = CliRunner().invoke(
                cli, ["messages", "show", str(message["id"]), "-c", str(self.config), "--json"]
            )
            assert shown.exit_code == 0, shown.output
            journey = json.loads(shown.output)
            out[journey["control_id"]] = journey
        return out


N = TypeVar("N", bound=NationalDmp)


@contextmanager
def national_dmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: type[N]) -> Iterator[N]:
    """The example against a DMP stand-in (repository and registry) over mutual TLS, as a
    ``kind`` (a test's subclass adds its own helpers)."""
    port, return_port = listener_port(), listener_port()
    config = copy_example(tmp_path, monkeypatch)
    with dmp_standin(tmp_path) as dmp:
        set_environment(
            monkeypatch,
            dmp.pki,
            dmp.seal,
            port=port,
            return_port=return_port,
            dmp_url=dmp.standin.url,
            DMP_REGISTRY_URL=dmp.standin.registry_url,
        )
        eai_check(config)
        yield kind(config, port, return_port, dmp.standin, dmp.pki, tmp_path)
