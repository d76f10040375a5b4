"""DICOM TLS (PS3.15 B.12) with client certificates, with real peers on 127.0.0.1.

dcmtk's ``storescu +tls`` / ``echoscu +tls`` (OpenSSL, BCP 195 profile) send to
the engine's ``dicom`` listener, which requires a client certificate signed by
the test CA; the engine forwards over mutual TLS to ``storescp +tls``, which
requires ours. Certificates are made at test time (:mod:`tests._pki`): the
right client certificate is accepted; none, one from another CA, or plain TCP
are refused and the listener keeps serving. A destination whose server
certificate does not verify gets nothing and the delivery is retried with the
reason. ``eai dicom echo`` / ``send`` take ``--ca``, ``--cert``, ``--key``
(as ``eai send`` does).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner

from eai.cli import cli
from standins.dicom import StoreScp, dataset_bytes, echoscu, make_ct_series, storescu
from tests._pki import Pki, make_pki
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOST = "127.0.0.1"

ROUTES = """
engine:
  data_dir: {tmp}/var
  database: sqlite:///{tmp}/var/eai.db
listeners:
  - name: img
    type: dicom
    ae_title: EAI
    bind: 127.0.0.1:0
    spool_dir: {tmp}/spool
    acse_timeout: 5s
    network_timeout: 5s
    allowed_callers: [{{ae_title: STORESCU}}, {{ae_title: ECHOSCU}}, {{ae_title: EAI}}]
    tls:
      cert: {pki.server_cert}
      key: {pki.server_key}
      client_ca: {pki.ca}
      require_client_cert: true
destinations:
  - name: pacs
    type: dicom
    ae_title: PACS
    host: 127.0.0.1
    port: {pacs_port}
    connect_timeout: 5s
    acse_timeout: 5s
    retry: {{initial: 0.2s, max: 1s, jitter: 0}}
    tls:
      ca: {pki.ca}
      cert: {pki.client_cert}
      key: {pki.client_key}
routes:
  - name: all
    from: [img]
    to: [pacs]
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_args(cert: Path, key: Path, ca: Path) -> tuple[str, ...]:
    """dcmtk: TLS with this certificate, verifying the peer against ``ca`` (``-rc``)."""
    return ("+tls", str(key), str(cert), "+cf", str(ca), "--require-peer-cert")


def tls_storescp(out: Path, pki: Pki, *, rogue: bool = False) -> StoreScp:
    """``storescp +tls`` requiring a client certificate from the test CA; with
    ``rogue``, it presents a server certificate from another CA."""
    cert, key = (
        (pki.rogue_server_cert, pki.rogue_server_key)
        if rogue
        else (pki.server_cert, pki.server_key)
    )
    return StoreScp(out, "PACS", extra_args=tls_args(cert, key, pki.ca))


@contextlib.contextmanager
def tls_router(
    tmp: Path, pki: Pki, *, rogue_pacs: bool = False
) -> Iterator[tuple[int, StoreScp, Path]]:
    with tls_storescp(tmp / "pacs", pki, rogue=rogue_pacs) as pacs:
        config = tmp / "routes.yaml"
        config.write_text(ROUTES.format(tmp=tmp, pki=pki, pacs_port=pacs.port))
        with EngineThread(config) as eng:
            yield eng.port("img"), pacs, config


def messages(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_storescu_with_client_certificate_goes_through_to_a_tls_pacs(
    tmp_path: Path, pki: Pki
) -> None:
    series = make_ct_series(3, tmp_path / "ct")
    with tls_router(tmp_path, pki) as (port, pacs, _config):
        rc, out = storescu(
            HOST, port, series, "EAI", extra_args=tls_args(pki.client_cert, pki.client_key, pki.ca)
        )
        assert rc == 0, out
        files = pacs.wait_files(3)
        received = sorted(dataset_bytes(f) for f in files)
        assert received == sorted(dataset_bytes(f) for f in series)


@pytest.mark.parametrize("client", ["no_cert", "cert_from_other_ca", "plain_tcp"])
def test_storescu_without_a_valid_certificate_is_refused(
    tmp_path: Path, pki: Pki, client: str
) -> None:
    series = make_ct_series(1, tmp_path / "ct")
    args = {
        # Anonymous TLS (no client certificate), still verifying the server.
        "no_cert": ("+tla", "+cf", str(pki.ca), "--require-peer-cert"),
        "cert_from_other_ca": tls_args(pki.rogue_cert, pki.rogue_key, pki.ca),
        "plain_tcp": (),
    }[client]
    with tls_router(tmp_path, pki) as (port, pacs, config):
        rc, out = storescu(HOST, port, series, "EAI", extra_args=args, timeout=30)
        assert rc != 0, out
        assert not list((tmp_path / "spool" / "instances").glob("*"))
        # The listener still serves a client with the right certificate.
        good = make_ct_series(1, tmp_path / "good")
        rc, out = storescu(
            HOST, port, good, "EAI", extra_args=tls_args(pki.client_cert, pki.client_key, pki.ca)
        )
        assert rc == 0, out
        pacs.wait_files(1)
        assert [m["control_id"] for m in messages(config)] == [
            str(pydicom.dcmread(good[0]).SOPInstanceUID)
        ]


def test_echoscu_over_tls(tmp_path: Path, pki: Pki) -> None:
    with tls_router(tmp_path, pki) as (port, _pacs, _config):
        rc, out = echoscu(
            HOST, port, "EAI", extra_args=tls_args(pki.client_cert, pki.client_key, pki.ca)
        )
        assert rc == 0, out
        rc, out = echoscu(
            HOST, port, "EAI", extra_args=tls_args(pki.rogue_cert, pki.rogue_key, pki.ca)
        )
        assert rc != 0, out


def test_destination_whose_certificate_does_not_verify_gets_nothing(
    tmp_path: Path, pki: Pki
) -> None:
    series = make_ct_series(1, tmp_path / "ct")
    with tls_router(tmp_path, pki, rogue_pacs=True) as (port, pacs, config):
        rc, out = storescu(
            HOST, port, series, "EAI", extra_args=tls_args(pki.client_cert, pki.client_key, pki.ca)
        )
        assert rc == 0, out  # journaled, then forwarding fails

        def failed() -> dict[str, Any] | None:
            rows = messages(config)
            if rows and rows[0]["deliveries"] and rows[0]["deliveries"][0]["attempts"] >= 2:
                return dict(rows[0]["deliveries"][0])
            return None

        delivery = wait_for(failed)
        assert delivery is not None, messages(config)
        assert delivery["status"] == "retrying"
        assert "certificate" in delivery["last_error"].lower(), delivery
        assert pacs.count() == 0


def test_cli_echo_and_send_over_tls(tmp_path: Path, pki: Pki) -> None:
    series = make_ct_series(2, tmp_path / "ct")
    tls = ["--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    with tls_router(tmp_path, pki) as (port, pacs, _config):
        runner = CliRunner()
        peer = f"EAI@{HOST}:{port}"
        result = runner.invoke(cli, ["dicom", "echo", *tls, peer])
        assert result.exit_code == 0 and "0x0000" in result.output, result.output
        result = runner.invoke(cli, ["dicom", "send", *tls, peer, str(tmp_path / "ct")])
        assert result.exit_code == 0, result.output
        assert "2 sent, 0 failed" in result.output
        assert sorted(dataset_bytes(f) for f in pacs.wait_files(2)) == sorted(
            dataset_bytes(f) for f in series
        )
        # Without a client certificate: refused.
        result = runner.invoke(cli, ["dicom", "echo", "--ca", str(pki.ca), peer])
        assert result.exit_code != 0, result.output
        # Plain TCP to a TLS listener: refused.
        result = runner.invoke(cli, ["dicom", "echo", "--timeout", "5", peer])
        assert result.exit_code != 0, result.output
