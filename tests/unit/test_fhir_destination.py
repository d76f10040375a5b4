"""The fhir destination's parts without I/O: the transaction it builds, how it reads the
server's answer, the OAuth2 token cache (httpx.MockTransport), the map: check, and the
delivery worker honouring a Retry-After."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.fhir.auth import TokenSource, client_assertion
from connectors.fhir.check import map_problems
from connectors.fhir.config import FhirDestinationConfig, OAuth2ClientConfig
from connectors.fhir.outcome import describe_outcome, retry_after, verdict
from connectors.fhir.transaction import BundleError, prepare
from eai.config import DestinationConfig
from eai.delivery import DeliveryWorker
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import DeliveryResult, MessageFacts, OutboxItem
from eai.store import Cipher, ClaimedDelivery

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
PATIENT = {
    "resourceType": "Patient",
    "identifier": [
        {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "279035121518989"},
        {"system": "urn:oid:1.2.3.4", "value": "LOCAL-42"},
    ],
}


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{i}", "resource": r}
            for i, r in enumerate(resources)
        ],
    }


OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
DR = {
    "resourceType": "DiagnosticReport",
    "status": "final",
    "code": {"text": "r"},
    "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"}],
}
ORG = {"resourceType": "Organization", "identifier": [{"system": "urn:oid:9", "value": "1"}]}


# -- transaction -------------------------------------------------------------------


def test_the_patient_is_a_conditional_create_on_the_qualified_ins() -> None:
    facts = MessageFacts(ins="1790328000000", ins_oid="1.2.250.1.213.1.4.8")
    out = prepare(_bundle(PATIENT, OBS), facts, "transaction", "ins_then_local").bundle
    assert out["type"] == "transaction"
    assert out["entry"][0]["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:oid:1.2.250.1.213.1.4.8|1790328000000",
    }
    assert out["entry"][1]["request"] == {"method": "POST", "url": "Observation"}
    assert out["entry"][1]["fullUrl"] == "urn:uuid:00000000-0000-0000-0000-000000000001"


def test_without_a_qualified_ins_the_local_identifier_finds_the_patient() -> None:
    out = prepare(_bundle(PATIENT), MessageFacts(), "transaction", "ins_then_local").bundle
    assert out["entry"][0]["request"]["ifNoneExist"] == "identifier=urn:oid:1.2.3.4|LOCAL-42"
    with pytest.raises(BundleError, match="no qualified INS"):
        prepare(_bundle(PATIENT), MessageFacts(), "transaction", "ins")
    no_local = {"resourceType": "Patient", "identifier": PATIENT["identifier"][:1]}
    with pytest.raises(BundleError, match="no local identifier"):
        prepare(_bundle(no_local), MessageFacts(), "transaction", "local")


def test_shared_resources_are_created_once_by_identifier() -> None:
    out = prepare(_bundle(ORG, DR), MessageFacts(), "transaction", "local").bundle
    assert out["entry"][0]["request"]["ifNoneExist"] == "identifier=urn:oid:9|1"
    assert out["entry"][1]["request"] == {"method": "POST", "url": "DiagnosticReport"}


def test_update_mode_makes_a_replay_change_nothing() -> None:
    out = prepare(_bundle(PATIENT, DR, OBS), MessageFacts(), "update", "local").bundle
    assert out["entry"][0]["request"]["method"] == "POST"  # the Patient: conditional create
    assert out["entry"][1]["request"] == {
        "method": "PUT",
        "url": "DiagnosticReport?identifier=urn:ietf:rfc:3986|urn:oid:1.2.3",
    }
    obs = out["entry"][2]
    assert obs["request"] == {
        "method": "PUT",
        "url": "Observation/00000000-0000-0000-0000-000000000002",
    }
    assert obs["resource"]["id"] == "00000000-0000-0000-0000-000000000002"


def test_batch_mode_and_refused_payloads() -> None:
    out = prepare(_bundle(OBS), MessageFacts(), "batch", "local").bundle
    assert out["type"] == "batch"
    with pytest.raises(BundleError, match="not a FHIR Bundle"):
        prepare({"resourceType": "Patient"}, MessageFacts(), "transaction", "local")


# -- outcome -----------------------------------------------------------------------


def _response(*statuses: str) -> bytes:
    entries = [
        {"response": {"status": s, "location": f"Observation/{i}/_history/1"}}
        for i, s in enumerate(statuses)
    ]
    return json.dumps(
        {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    ).encode()


def test_all_2xx_is_delivered_with_the_ids_created() -> None:
    result = verdict(200, {}, _response("201 Created", "200"), ["a", "b"], NOW, "srv")
    assert result.detail == "HTTP 200: Observation/0 Observation/1"


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_busy_answers_are_transient_with_their_retry_after(status: int) -> None:
    with pytest.raises(TransientDeliveryError) as caught:
        verdict(status, {"retry-after": "7"}, b"", ["a"], NOW, "srv")
    assert caught.value.retry_after == 7.0


def test_retry_after_seconds_or_http_date() -> None:
    assert retry_after("2", NOW) == 2.0
    assert retry_after("Sun, 06 Dec 2026 12:00:30 GMT", NOW) == 30.0
    assert retry_after("Sun, 06 Dec 2026 11:00:00 GMT", NOW) == 0.0
    assert retry_after("soon", NOW) is None
    assert retry_after(None, NOW) is None


def test_other_4xx_are_permanent_with_the_operation_outcome() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "bad unit",
                "expression": ["Bundle.entry[3].resource.valueQuantity"],
            }
        ],
    }
    with pytest.raises(PermanentDeliveryError) as caught:
        verdict(422, {}, json.dumps(outcome).encode(), ["a"], NOW, "srv")
    assert "HTTP 422" in str(caught.value)
    assert "error invalid: bad unit (at Bundle.entry[3].resource.valueQuantity)" in str(
        caught.value
    )
    assert describe_outcome({"resourceType": "Bundle"}) == ""


def test_a_batch_with_failed_entries_names_each_failure() -> None:
    body = json.loads(_response("201", "400", "201", "404"))
    body["entry"][1]["response"]["outcome"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "required", "diagnostics": "status missing"}],
    }
    labels = [
        "Patient (entry 0)",
        "Observation (entry 1)",
        "Observation (entry 2)",
        "Specimen (entry 3)",
    ]
    with pytest.raises(PermanentDeliveryError) as caught:
        verdict(200, {}, json.dumps(body).encode(), labels, NOW, "srv")
    said = str(caught.value)
    assert "2 of 4 entries failed" in said
    assert "Observation (entry 1): 400: error required: status missing" in said
    assert "Specimen (entry 3): 404: no OperationOutcome" in said


# -- OAuth2 ------------------------------------------------------------------------


def _token_server(log: list[dict[str, str]]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        log.append(form)
        return httpx.Response(200, json={"access_token": f"t{len(log)}", "expires_in": 60})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def test_the_token_is_cached_until_it_expires_and_renewed_when_refused() -> None:
    log: list[dict[str, str]] = []
    clock = SimpleNamespace(now=0.0)
    config = OAuth2ClientConfig(
        token_url="https://as.example/token",  # type: ignore[arg-type]
        client_id="eai",
        client_secret="s",  # type: ignore[arg-type]
        scope="system/*.write",
        early_refresh=10,
    )

    async def run() -> list[str]:
        async with _token_server(log) as client:
            tokens = TokenSource(config, client, clock=lambda: clock.now)
            got = [await tokens.token(), await tokens.token()]
            clock.now = 49.0
            got.append(await tokens.token())
            clock.now = 51.0  # 60 s - early_refresh 10 s
            got.append(await tokens.token())
            tokens.invalidate("t2")
            got.append(await tokens.token())
            return got

    assert asyncio.run(run()) == ["t1", "t1", "t1", "t2", "t3"]
    assert log[0] == {
        "grant_type": "client_credentials",
        "client_id": "eai",
        "scope": "system/*.write",
        "client_secret": "s",
    }


def test_private_key_jwt_assertion_is_a_signed_es256_jwt() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = client_assertion(key, "eai", "https://as.example/token", "k1")
    header, claims, signature = token.split(".")
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    assert json.loads(pad(header)) == {"alg": "ES256", "typ": "JWT", "kid": "k1"}
    body = json.loads(pad(claims))
    assert body["iss"] == body["sub"] == "eai" and body["aud"] == "https://as.example/token"
    assert body["exp"] - body["iat"] == 60 and len(pad(signature)) == 64


def test_config_needs_exactly_one_client_credential_and_consistent_auth() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        OAuth2ClientConfig(token_url="https://as.example/t", client_id="eai")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs an oauth2 block"):
        FhirDestinationConfig(name="s", base_url="https://x/fhir", auth="oauth2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs tls.cert"):
        FhirDestinationConfig(name="s", base_url="https://x/fhir", auth="mtls")  # type: ignore[arg-type]


# -- eai check ---------------------------------------------------------------------


def test_a_route_to_fhir_needs_map() -> None:
    data = {
        "destinations": [{"name": "scad", "type": "fhir"}, {"name": "dcc", "type": "mllp"}],
        "routes": [
            {"name": "a", "to": ["dcc", "scad"]},
            {"name": "b", "to": ["scad"], "map": "auto"},
            "malformed",
        ],
    }
    assert [loc for loc, _ in map_problems(data)] == [("routes", 0, "to", 1)]


# -- the delivery worker honours Retry-After -----------------------------------------


class _Busy:
    async def start(self) -> None: ...

    async def send(self, item: OutboxItem) -> DeliveryResult:
        raise TransientDeliveryError("busy", retry_after=120.0)

    async def close(self) -> None: ...


def test_the_delivery_worker_waits_at_least_the_retry_after() -> None:
    cipher = Cipher(b"k" * 32)
    config = DestinationConfig(name="scad", type="fhir", retry={"initial": 0.1, "max": 1})  # type: ignore[arg-type]
    worker = DeliveryWorker(config, _Busy(), SimpleNamespace(cipher=cipher), "node")  # type: ignore[arg-type]
    row = ClaimedDelivery(1, 1, "scad", "k", "C1", 0, cipher.seal(b"{}"))
    before = datetime.now(UTC).replace(tzinfo=None)
    outcome = asyncio.run(worker._attempt(row))
    assert outcome.status == "retrying"
    assert outcome.next_attempt_at - before >= timedelta(seconds=120)


def test_private_key_jwt_replaces_the_secret_in_the_token_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    config = OAuth2ClientConfig(
        token_url="https://as.example/token",  # type: ignore[arg-type]
        client_id="eai",
        private_key=Path("/nonexistent/key.pem"),
        key_id="k1",
    )
    log: list[dict[str, str]] = []
    with patch.object(Path, "read_bytes", return_value=pem):

        async def run() -> str:
            async with _token_server(log) as client:
                return await TokenSource(config, client).token()

        assert asyncio.run(run()) == "t1"
    form = log[0]
    assert "client_secret" not in form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["client_assertion"].count(".") == 2


def test_a_refused_client_is_transient_the_deliveries_wait_for_the_fix() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    config = OAuth2ClientConfig(
        token_url="https://as.example/token",  # type: ignore[arg-type]
        client_id="eai",
        client_secret="wrong",  # type: ignore[arg-type]
    )

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            await TokenSource(config, client).token()

    with pytest.raises(TransientDeliveryError, match="refused the client .401 invalid_client"):
        asyncio.run(run())
