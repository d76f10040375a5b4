"""The fhir destination end to end: HL7 v2 ORU (CR-BIO CDA) over MLLP -> eai (map:) ->
Medplum's FHIR router (tests/_fhir_peer), a real FHIR implementation that runs the
transaction and validates every resource against the FHIR R4 definitions.

One Patient across two reports of the same patient (conditional create), the report and
every Observation with its value and unit; a 429 with Retry-After: 2 retried no sooner;
a 422 with an OperationOutcome dead with its diagnostics; an access token that expires
early renewed on the 401, nothing lost; mutual TLS, over HTTP/2 (HTTP/1.1 over plain
http); eai check refuses a route without map:.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.fhir.config import FhirDestinationConfig
from eai.cli import cli
from eai.config import load_config
from mappings import convert
from tests._crbio import ORU, crbio_oru
from tests._fhir_peer import FhirPeer
from tests._mllp import MllpSender, msa
from tests._paths import REPO
from tests._pki import Pki, make_pki
from tests.engine_harness import EngineThread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _routes(tmp: Path, dest: dict[str, Any], *, map_: str | None = "auto") -> Path:
    route: dict[str, Any] = {"name": "scad", "from": ["lab"], "to": ["scad"]}
    if map_:
        route["map"] = map_
    config = {
        "engine": {"data_dir": str(tmp / "var"), "database": f"sqlite:///{tmp}/var/eai.db"},
        "listeners": [{"name": "lab", "type": "mllp", "bind": "127.0.0.1:0", "test_feed": True}],
        "destinations": [
            {
                "name": "scad",
                "type": "fhir",
                "retry": {"initial": "0.05s", "max": "0.2s", "jitter": 0},
                **dest,
            }
        ],
        "routes": [route],
    }
    path = tmp / "routes.yaml"
    path.write_text(json.dumps(config, indent=1))
    return path


def _deliveries(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return [d for m in json.loads(result.output) for d in m["deliveries"]]


def _show(config: Path, message_id: int) -> str:
    result = CliRunner().invoke(cli, ["messages", "show", "-c", str(config), str(message_id)])
    assert result.exit_code == 0, result.output
    return result.output


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _settled(config: Path, n: int, status: str) -> Callable[[], bool]:
    def check() -> bool:
        rows = _deliveries(config)
        return len(rows) == n and all(d["status"] == status for d in rows)

    return check


def _send(port: int, *control_ids: str) -> None:
    with MllpSender(port) as sender:
        for cid in control_ids:
            code, _ = msa(sender.exchange(crbio_oru(cid)))
            assert code == "AA", f"{cid}: {code}"


@pytest.fixture
def peer() -> Iterator[FhirPeer]:
    with FhirPeer() as running:
        yield running


def _results(observations: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(LOINC or local code, value, unit) of each Observation, sorted."""
    out = []
    for obs in observations:
        quantity = obs.get("valueQuantity") or {}
        code = obs["code"]["coding"][0]["code"] if obs["code"].get("coding") else ""
        out.append((code, quantity.get("value"), quantity.get("unit")))
    return sorted(out, key=repr)


@pytest.mark.parametrize("mapping", ["cisis-oru-mdm", "scad-observations"])
def test_two_reports_of_one_patient_make_one_patient_and_every_result(
    peer: FhirPeer, tmp_path: Path, mapping: str
) -> None:
    config = _routes(tmp_path, {"base_url": peer.base_url}, map_=mapping)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-0001", "ORU-0002")
        _wait(_settled(config, 2, "delivered"), "both reports delivered")
    patients = peer.search("Patient")
    assert len(patients) == 1, "the Patient is created once (ifNoneExist)"
    reports = peer.search("DiagnosticReport")
    assert len(reports) == 2
    expected = [
        e["resource"]
        for e in convert(ORU, "hl7v2", mapping)["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    observations = peer.search("Observation")
    assert _results(observations) == sorted(_results(expected) * 2, key=repr)
    assert any(r[1] is not None and r[2] for r in _results(observations)), "values and units"
    patient_ref = f"Patient/{patients[0]['id']}"
    assert all(o["subject"]["reference"] == patient_ref for o in observations)
    assert all(r["subject"]["reference"] == patient_ref for r in reports)
    # the created ids are the delivery's detail, shown by eai messages show
    shown = _show(config, 1)
    assert patient_ref in shown
    assert sum(f"DiagnosticReport/{r['id']}" in shown for r in reports) == 1
    assert sum(f"Observation/{o['id']}" in shown for o in observations) == len(expected)
    assert [r["id"] for r in peer.log() if r["path"] == "/fhir"] == ["ORU-0001", "ORU-0002"]
    if mapping == "scad-observations":
        lab = "http://terminology.hl7.org/CodeSystem/observation-category"
        categories = [
            {(c["system"], c["code"]) for cat in o["category"] for c in cat["coding"]}
            for o in observations
        ]
        assert all(found == {(lab, "laboratory")} for found in categories)


def test_429_with_retry_after_is_retried_no_sooner(peer: FhirPeer, tmp_path: Path) -> None:
    busy = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "throttled"}],
    }
    peer.control(script=[{"status": 429, "headers": {"retry-after": "2"}, "body": busy}])
    config = _routes(tmp_path, {"base_url": peer.base_url})
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-0429")
        _wait(_settled(config, 1, "delivered"), "delivered after the 429")
    posts = [r for r in peer.log() if r["path"] == "/fhir"]
    assert [(r["status"], r["http"]) for r in posts] == [(429, "1.1"), (200, "1.1")]  # no h2c
    assert posts[1]["at"] - posts[0]["at"] >= 2.0, "Retry-After: 2 honoured (backoff is 0.05 s)"


def test_422_with_an_operation_outcome_is_dead_with_its_diagnostics(
    peer: FhirPeer, tmp_path: Path
) -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "business-rule",
                "diagnostics": "SCAD-4711 patient not enrolled in telemonitoring",
                "expression": ["Bundle.entry[0].resource"],
            }
        ],
    }
    peer.control(script=[{"status": 422, "body": refusal}])
    config = _routes(tmp_path, {"base_url": peer.base_url})
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-0422")
        _wait(_settled(config, 1, "dead"), "dead after the 422")
    shown = _show(config, 1)
    assert "SCAD-4711 patient not enrolled in telemonitoring" in shown
    assert "business-rule" in shown and "Bundle.entry[0].resource" in shown
    assert len([r for r in peer.log() if r["path"] == "/fhir"]) == 1, "not retried"


def test_an_expired_token_is_renewed_and_nothing_is_lost(peer: FhirPeer, tmp_path: Path) -> None:
    # the server keeps its tokens 1 s but says 3600: the client learns it from a 401
    oauth2 = {"client_id": "eai", "client_secret": "s3cret", "lifetime": 1, "announced": 3600}
    peer.control(oauth2=oauth2)
    dest = {
        "base_url": peer.base_url,
        "auth": "oauth2",
        "oauth2": {"token_url": peer.token_url, "client_id": "eai", "client_secret": "s3cret"},
    }
    config = _routes(tmp_path, dest)
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-T001")
        _wait(_settled(config, 1, "delivered"), "first report delivered")
        time.sleep(1.5)
        _send(eng.port("lab"), "ORU-T002")
        _wait(_settled(config, 2, "delivered"), "second report delivered")
    log = peer.log()
    assert [r["path"] for r in log].count("/token") == 2
    statuses = [(r["id"], r["status"]) for r in log if r["path"] == "/fhir"]
    assert statuses == [("ORU-T001", 200), ("ORU-T002", 401), ("ORU-T002", 200)]
    peer.control(oauth2=None)
    assert len(peer.search("DiagnosticReport")) == 2


def test_mutual_tls_over_http2(tmp_path: Path) -> None:
    pki: Pki = make_pki(tmp_path / "pki")
    with FhirPeer(tls=(pki.server_cert, pki.server_key, pki.ca)) as peer:
        tls = {"ca": str(pki.ca), "cert": str(pki.client_cert), "key": str(pki.client_key)}
        config = _routes(tmp_path, {"base_url": peer.base_url, "auth": "mtls", "tls": tls})
        with EngineThread(config) as eng:
            _send(eng.port("lab"), "ORU-TLS1")
            _wait(_settled(config, 1, "delivered"), "delivered over mutual TLS")
        # HTTP/2, negotiated by ALPN (the peer also takes HTTP/1.1)
        assert [(r["status"], r["http"]) for r in peer.log() if r["path"] == "/fhir"] == [
            (200, "2.0")
        ]


def test_check_refuses_a_route_to_fhir_without_map(tmp_path: Path) -> None:
    config = _routes(tmp_path, {"base_url": "http://127.0.0.1:9/fhir"}, map_=None)
    result = CliRunner().invoke(cli, ["check", "-c", str(config)])
    assert result.exit_code != 0
    said = f"{result.output}{result.exception}"
    assert (
        "routes.yaml:33:5: routes[0].to[0]: destination 'scad' is fhir: the route needs map:"
        in said
    )


def test_the_national_example_takes_scad_from_the_environment() -> None:
    env = {
        "SCAD_URL": "https://scad.region.example/fhir",
        "SCAD_TOKEN_URL": "https://auth.region.example/token",
        "SCAD_CLIENT_ID": "eai-grades",
        "SCAD_CLIENT_SECRET": "from-the-vault",
    }
    config = load_config(REPO / "examples" / "national-routes.yaml", env)
    (scad,) = [d for d in config.destinations if d.name == "scad"]
    assert isinstance(scad, FhirDestinationConfig)
    assert str(scad.base_url) == env["SCAD_URL"]
    assert scad.oauth2 is not None and str(scad.oauth2.token_url) == env["SCAD_TOKEN_URL"]
    assert scad.oauth2.client_id == "eai-grades"
    assert scad.oauth2.client_secret is not None
    assert scad.oauth2.client_secret.get_secret_value() == "from-the-vault"
    (route,) = [r for r in config.routes if "scad" in r.to]
    assert route.map_ == "scad-observations"


def test_update_mode_makes_a_replay_duplicate_nothing(peer: FhirPeer, tmp_path: Path) -> None:
    config = _routes(tmp_path, {"base_url": peer.base_url, "mode": "update"})
    with EngineThread(config) as eng:
        _send(eng.port("lab"), "ORU-R001")
        _wait(_settled(config, 1, "delivered"), "the report delivered")
        replayed = CliRunner().invoke(cli, ["replay", "-c", str(config), "--yes", "1"])
        assert replayed.exit_code == 0, replayed.output
        _wait(_settled(config, 2, "delivered"), "the replay delivered")
    assert [r["status"] for r in peer.log() if r["path"] == "/fhir"] == [200, 200]
    assert len(peer.search("Patient")) == 1
    assert len(peer.search("DiagnosticReport")) == 1
    assert len(peer.search("Observation")) == 52
    assert len(peer.search("Specimen")) == 4
