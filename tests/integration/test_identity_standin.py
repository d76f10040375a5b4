"""The PDQm/PIXm client against the identity-server stand-in over real sockets (127.0.0.1):
searches, PIXm, cache, outages, mutual TLS, the stand-in's refusals, and its CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.pdqm import (
    Identifier,
    IdentityServerClient,
    IdentityServerUnavailable,
    TraitsQuery,
)
from identity.reconcile import reconcile
from standins.identity import StandinServer
from standins.net import free_port
from tests._identity_server import (
    CHU_X,
    REGIONAL,
    SECRETS,
    TEST_OID,
    config,
    service,
)
from tests._paths import REPO

pytestmark = pytest.mark.integration

INS = "279035121518989"


def run(coro):
    return asyncio.run(coro)


def test_search_by_ins_traits_and_pixm_over_http():
    svc = service()

    async def scenario():
        async with StandinServer(svc) as server:
            async with IdentityServerClient(config(server.url)) as client:
                by_ins = await client.search_by_ins(INS, TEST_OID)
                by_traits = await client.search_by_traits(
                    TraitsQuery("Pât-Trois", "Dominique", "1979-03-28", "female")
                )
                xrefs = await client.cross_references(Identifier(REGIONAL, "R0001"))
                unknown = await client.cross_references(Identifier(CHU_X, "404404"))
                return by_ins, by_traits, xrefs, unknown

    by_ins, by_traits, xrefs, unknown = run(scenario())
    assert [p.regional_id for p in by_ins] == [p.regional_id for p in by_traits] == ["R0001"]
    assert by_ins[0].birth_place == "63220" and by_traits[0].birth_date == "1979-03-28"
    assert xrefs is not None and Identifier(CHU_X, "000003") in xrefs
    assert unknown is None
    assert svc.violations == []


def test_cache_hit_sends_no_second_request():
    svc = service()

    async def scenario():
        async with StandinServer(svc) as server:
            async with IdentityServerClient(config(server.url)) as client:
                for _ in range(3):
                    await client.search_by_ins(INS, TEST_OID)
                    await client.cross_references(Identifier(REGIONAL, "R0001"))
                return client.stats

    stats = run(scenario())
    assert svc.request_count == 2 and stats.requests == 2 and stats.cache_hits == 4


def test_server_down_is_unavailable_quickly_then_answers_again():
    svc = service()

    async def scenario():
        server = StandinServer(svc)
        await server.start()
        port = server.bound_port
        url = server.url
        async with IdentityServerClient(config(url, outage_backoff="200ms")) as client:
            await client.search_by_ins(INS, TEST_OID)
            await server.stop()
            client.clear_cache()
            started = time.monotonic()
            with pytest.raises(IdentityServerUnavailable):
                await client.search_by_ins(INS, TEST_OID)
            with pytest.raises(IdentityServerUnavailable):  # backing off: not even a connect
                await client.search_by_ins(INS, TEST_OID)
            elapsed = time.monotonic() - started
            assert not client.available
            restarted = StandinServer(svc, port=port)
            await restarted.start()
            await asyncio.sleep(0.25)
            found = await client.search_by_ins(INS, TEST_OID)
            await restarted.stop()
            return elapsed, found, client.available, client.stats

    elapsed, found, available, stats = run(scenario())
    assert elapsed < 0.5 and len(found) == 1 and available
    assert stats.requests == 3 and stats.failures == 1


def test_nothing_listening_is_unavailable_within_milliseconds():
    async def scenario():
        url = f"http://127.0.0.1:{free_port()}/fhir"
        async with IdentityServerClient(config(url)) as client:
            started = time.monotonic()
            with pytest.raises(IdentityServerUnavailable, match="no connection"):
                await client.search_by_ins(INS)
            return time.monotonic() - started

    assert run(scenario()) < 0.5


def test_a_server_that_does_not_answer_times_out_once_then_backs_off():
    svc = service()
    svc.delay = 5.0

    async def scenario():
        async with StandinServer(svc) as server:
            async with IdentityServerClient(config(server.url, timeout="300ms")) as client:
                started = time.monotonic()
                with pytest.raises(IdentityServerUnavailable, match="timed out"):
                    await client.search_by_ins(INS)
                first = time.monotonic() - started
                with pytest.raises(IdentityServerUnavailable):
                    await client.search_by_traits(TraitsQuery("X", birthdate="2000-01-01"))
                return first, time.monotonic() - started - first

    first, second = run(scenario())
    assert 0.25 < first < 2.0 and second < 0.05


@pytest.mark.parametrize(
    "target,status,why",
    [
        ("/fhir/Patient?identifier=1.2.250.1.213.1.4.10|" + INS, 400, "system of a token"),
        ("/fhir/Patient?identifier=a|b|c", 400, "one unescaped"),
        ("/fhir/Patient?identifier=", 400, "empty value"),
        ("/fhir/Patient?name=PAT", 400, "unknown search parameter"),
        ("/fhir/Patient?family:contains=PAT", 400, ":exact"),
        ("/fhir/Patient?birthdate=28/03/1979", 400, "FHIR date"),
        ("/fhir/Patient?family=PAT&gender=F", 400, "gender"),
        ("/fhir/Patient?family=PAT&gender=male&gender=female", 400, "more than once"),
        ("/fhir/Patient?family=PAT&_format=text/plain", 400, "_format"),
        ("/fhir/Patient?family=PAT&_format=xml", 406, "JSON only"),
        ("/fhir/Patient?telecom=0102030405", 400, "not implemented"),
        ("/fhir/Patient?_format=json", 400, "at least one criterion"),
        ("/fhir/Patient?birthplace=Paris", 400, "INSEE"),
        ("/fhir/Patient/$ihe-pix", 400, "exactly one sourceIdentifier"),
        ("/fhir/Patient/$ihe-pix?sourceIdentifier=000003", 400, "both given"),
        (
            f"/fhir/Patient/$ihe-pix?sourceIdentifier={CHU_X}|1&sourceIdentifier={CHU_X}|2",
            400,
            "exactly one",
        ),
        (f"/fhir/Patient/$ihe-pix?sourceIdentifier={CHU_X}|1&target=x", 400, "unknown parameter"),
        (
            f"/fhir/Patient/$ihe-pix?sourceIdentifier={CHU_X}|1&targetSystem=CHU-Y",
            400,
            "targetSystem",
        ),
        ("/fhir/Patient/$ihe-pix?sourceIdentifier=urn:oid:1.2.3.4|1", 400, "Assigning Authority"),
        (
            f"/fhir/Patient/$ihe-pix?sourceIdentifier={CHU_X}|1&targetSystem=urn:oid:1.2.3.4",
            403,
            "targetSystem not found",
        ),
        ("/Patient?family=PAT", 404, "FHIR base"),
        ("/fhir/Observation?code=x", 404, "no such operation"),
    ],
)
def test_malformed_requests_are_refused_and_recorded(target, status, why):
    svc = service()

    async def scenario():
        async with StandinServer(svc) as server:
            base = server.url.removesuffix("/fhir")
            async with httpx.AsyncClient() as http:
                return await http.get(base + target)

    response = run(scenario())
    assert response.status_code == status
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and why in body["issue"][0]["diagnostics"]
    assert len(svc.violations) == 1 and svc.violations[0].status == status


def test_pix_with_post_is_refused_and_search_by_post_is_accepted():
    svc = service()

    async def scenario():
        async with StandinServer(svc) as server:
            async with httpx.AsyncClient(base_url=server.url + "/") as http:
                pix = await http.post("Patient/$ihe-pix", data={"sourceIdentifier": f"{CHU_X}|1"})
                search = await http.post("Patient/_search", data={"identifier": f"{CHU_X}|000003"})
                read = await http.get("Patient/R0002")
                meta = await http.get("metadata")
                return pix, search, read, meta

    pix, search, read, meta = run(scenario())
    assert pix.status_code == 405 and len(svc.violations) == 1
    assert search.status_code == 200 and search.json()["total"] == 1
    assert read.json()["birthDate"] == "1962-01-15"
    assert meta.json()["resourceType"] == "CapabilityStatement"


def test_reconciliation_over_http_leaves_no_patient_data_in_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    svc = service()
    from eai import hl7
    from identity.patient import identity_from_hl7
    from tests._paths import HL7V2

    ident = identity_from_hl7(hl7.parse((HL7V2 / "pamfr_a01_admission.er7").read_bytes()))

    async def scenario():
        async with StandinServer(svc) as server:
            async with IdentityServerClient(config(server.url)) as client:
                result = await reconcile(client, ident)
                async with httpx.AsyncClient() as http:  # one refused request, logged too
                    await http.get(server.url + f"/Patient?identifier=x|{INS}")
                return result

    result = run(scenario())
    assert result.outcome == "matched" and len(svc.violations) == 1
    assert "stand-in refused" in caplog.text and "HTTP Request" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


# --- mutual TLS ------------------------------------------------------------------------


def _issue(subject, issuer=None, *, ca=False, server=False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert, key) -> tuple[Path, Path]:
    c, k = directory / f"{stem}.crt", directory / f"{stem}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return c, k


def test_mutual_tls_with_the_configured_ca_and_client_certificate(tmp_path: Path):
    ca = _issue("eai test CA", ca=True)
    ca_path, _ = _write(tmp_path, "ca", *ca)
    server_cert, server_key = _write(tmp_path, "server", *_issue("localhost", ca, server=True))
    client_cert, client_key = _write(tmp_path, "client", *_issue("eai.grades", ca))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_path))
    ctx.load_cert_chain(server_cert, server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    svc = service()

    async def scenario():
        async with StandinServer(svc, ssl_context=ctx) as server:
            assert server.url.startswith("https://")
            tls = {"ca": str(ca_path), "cert": str(client_cert), "key": str(client_key)}
            async with IdentityServerClient(config(server.url, tls=tls)) as client:
                found = await client.search_by_ins(INS, TEST_OID)
            no_cert = config(server.url, tls={"ca": str(ca_path)})
            async with IdentityServerClient(no_cert) as client:
                with pytest.raises(IdentityServerUnavailable):
                    await client.search_by_ins(INS, TEST_OID)
            system_cas = config(server.url)  # the test CA is not among the system's
            async with IdentityServerClient(system_cas) as client:
                with pytest.raises(IdentityServerUnavailable):
                    await client.search_by_ins(INS, TEST_OID)
            return found

    assert [p.regional_id for p in run(scenario())] == ["R0001"]
    assert svc.request_count == 1


# --- eai identity standin ------------------------------------------------------------------


def test_cli_runs_the_stand_in_on_the_bundled_demo_patients_until_sigterm():
    patients = REPO / "examples" / "identity-patients.json"
    for _attempt in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "cli.py"), "identity", "standin"]
            + ["--patients", str(patients), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            answer = _wait_for(f"http://127.0.0.1:{port}/fhir", proc)
        except BaseException:
            proc.kill()
            proc.communicate(timeout=10)
            raise
        if answer is not None:
            break
        proc.communicate(timeout=10)  # the port was taken meanwhile: try another
    else:
        pytest.fail("the stand-in CLI never answered")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert answer.json()["total"] == 1
    text = err.decode()
    assert "not a real identity server" in text and "stopped after" in text
    assert REGIONAL in text


def _wait_for(url: str, proc: subprocess.Popen) -> httpx.Response | None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            return httpx.get(url + "/Patient", params={"identifier": f"{CHU_X}|000003"})
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the stand-in CLI did not start within 20 s")
