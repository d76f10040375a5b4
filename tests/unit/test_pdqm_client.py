"""The PDQm/PIXm client: request shapes, FR Core reading, errors, cache, outage back-off, logs.

The stand-in's request handler answers through ``httpx.MockTransport`` (no socket); every
test that talks to it also checks that the stand-in found nothing malformed.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from pydantic import ValidationError

from eai.config import IdentityConfig, load_config_text
from eai.errors import ConfigError
from identity.pdqm import (
    Identifier,
    IdentityServerClient,
    IdentityServerError,
    IdentityServerUnavailable,
    TraitsQuery,
    patient_from_fhir,
)
from tests._identity_server import (
    CH_Y,
    CHU_X,
    PATIENTS,
    REGIONAL,
    SECRETS,
    TEST_OID,
    Clock,
    config,
    mock_client,
    service,
)

DOMINIQUE = TraitsQuery("PAT-TROIS", "DOMINIQUE", "1979-03-28", "female", "63220")


def run(coro):
    return asyncio.run(coro)


def _params(svc, index=-1):
    return dict(svc.requests[index][2])


def test_search_by_ins_sends_an_oid_token_and_reads_the_fr_core_patient():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            return await client.search_by_ins("279035121518989", TEST_OID)

    (p,) = run(scenario())
    assert svc.requests[0][:2] == ("GET", "/fhir/Patient")
    assert _params(svc) == {"identifier": f"urn:oid:{TEST_OID}|279035121518989"}
    assert (p.resource_id, p.regional_id, p.ins, p.ins_oid) == (
        "R0001",
        "R0001",
        "279035121518989",
        TEST_OID,
    )
    assert (p.birth_name, p.first_given_name, p.birth_given_names) == (
        "PAT-TROIS",
        "DOMINIQUE",
        ("DOMINIQUE",),
    )
    assert (p.birth_date, p.gender, p.birth_place, p.active) == (
        "1979-03-28",
        "female",
        "63220",
        True,
    )
    assert Identifier(CHU_X, "000003") in p.identifiers
    assert svc.violations == []


def test_search_by_ins_without_oid_asks_for_every_ins_oid():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            return await client.search_by_ins(" 162018885045327 ")

    (p,) = run(scenario())
    tokens = _params(svc)["identifier"].split(",")
    assert tokens == [
        f"urn:oid:1.2.250.1.213.1.4.{n}|162018885045327" for n in ("8", "9", "10", "11")
    ]
    assert p.regional_id == "R0002" and svc.violations == []


def test_search_by_traits_sends_pdqm_parameters_and_the_birth_place_only_when_configured():
    svc = service()

    async def scenario(**overrides):
        async with mock_client(svc, **overrides) as client:
            return await client.search_by_traits(DOMINIQUE)

    (p,) = run(scenario())
    assert _params(svc) == {
        "family": "PAT-TROIS",
        "given": "DOMINIQUE",
        "birthdate": "1979-03-28",
        "gender": "female",
    }
    (q,) = run(scenario(birth_place_param="birthplace"))
    assert _params(svc)["birthplace"] == "63220"
    assert p.regional_id == q.regional_id == "R0001" and svc.violations == []


def test_search_by_traits_needs_the_birth_name_and_the_date_or_the_sex():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            with pytest.raises(IdentityServerError):
                await client.search_by_traits(TraitsQuery("PAT-TROIS"))
            with pytest.raises(IdentityServerError):
                await client.search_by_traits(TraitsQuery("", birthdate="1979-03-28"))
            return await client.search_by_traits(TraitsQuery("martin", gender="female"))

    assert len(run(scenario())) == 2
    assert svc.request_count == 1


def test_search_by_a_local_identifier():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            return await client.search_by_identifier(CH_Y, "Y-77")

    (p,) = run(scenario())
    assert p.regional_id == "R0002" and _params(svc) == {"identifier": f"{CH_Y}|Y-77"}
    assert svc.violations == []


def test_patient_from_fhir_prefers_the_official_name_and_reads_fr_core_extensions():
    resource = {
        "resourceType": "Patient",
        "id": "x",
        "active": False,
        "identifier": [
            {"system": REGIONAL, "value": "R9"},
            {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "297022A02077878"},
        ],
        "name": [
            {"use": "usual", "family": "EPOUSE", "given": ["ANNE"]},
            {
                "use": "official",
                "family": "CORSE",
                "given": ["ANNE"],
                "extension": [
                    {
                        "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                        "fr-core-patient-birth-list-given-name",
                        "valueString": "ANNE MARIE  LAETITIA",
                    }
                ],
            },
        ],
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {
                    "extension": [
                        {
                            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                            "fr-core-address-insee-code",
                            "valueCoding": {"code": "2A004"},
                        }
                    ]
                },
            }
        ],
        "link": [{"type": "replaced-by", "other": {"reference": "Patient/y"}}],
    }
    p = patient_from_fhir(resource, REGIONAL)
    assert (p.regional_id, p.ins, p.ins_oid) == ("R9", "297022A02077878", "1.2.250.1.213.1.4.8")
    assert (p.birth_name, p.first_given_name) == ("CORSE", "ANNE")
    assert p.birth_given_names == ("ANNE", "MARIE", "LAETITIA")
    assert (p.birth_place, p.active, p.replaced_by) == ("2A004", False, "Patient/y")
    bare = patient_from_fhir({"resourceType": "Patient", "id": "z"}, REGIONAL)
    assert (bare.regional_id, bare.birth_name, bare.ins, bare.active) == ("", "", "", True)


def test_pixm_lists_the_identifiers_linked_to_the_source_and_none_when_unknown():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            every = await client.cross_references(Identifier(REGIONAL, "R0002"))
            only_y = await client.cross_references(Identifier(CHU_X, "000010"), [CH_Y])
            unknown = await client.cross_references(Identifier(CHU_X, "999999"))
            return every, only_y, unknown

    every, only_y, unknown = run(scenario())
    assert set(every) == {
        Identifier("urn:oid:1.2.250.1.213.1.4.8", "162018885045327"),
        Identifier(CHU_X, "000010"),
        Identifier(CH_Y, "Y-77"),
    }
    assert only_y == (Identifier(CH_Y, "Y-77"),)
    assert unknown is None
    method, path, params = svc.requests[1]
    assert (method, path) == ("GET", "/fhir/Patient/$ihe-pix")
    assert params == (("sourceIdentifier", f"{CHU_X}|000010"), ("targetSystem", CH_Y))
    assert svc.violations == []


def test_a_refused_request_is_an_error_naming_codes_not_the_servers_text():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            with pytest.raises(IdentityServerError) as info:
                await client.cross_references(Identifier("urn:oid:1.2.3.4", "000003"))
            with pytest.raises(IdentityServerError):  # errors are not cached: asked again
                await client.cross_references(Identifier("urn:oid:1.2.3.4", "000003"))
            return info.value

    exc = run(scenario())
    assert exc.status == 400 and "code-invalid" in str(exc)
    assert "Assigning Authority" in exc.diagnostics and exc.diagnostics not in str(exc)
    assert svc.request_count == 2


def test_token_values_are_escaped():
    assert Identifier("urn:oid:1.2", "a|b,c\\d$e").token == "urn:oid:1.2|a\\|b\\,c\\\\d\\$e"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_failures_make_it_unavailable_then_back_off_without_asking(status):
    svc = service()
    clock = Clock()

    async def scenario():
        async with mock_client(svc, clock, outage_backoff="30s") as client:
            svc.fail_status = status
            with pytest.raises(IdentityServerUnavailable) as first:
                await client.search_by_ins("279035121518989", TEST_OID)
            assert not client.available and first.value.retry_after == 30
            svc.fail_status = None
            clock.now += 10
            with pytest.raises(IdentityServerUnavailable) as second:  # no request: backing off
                await client.search_by_ins("279035121518989", TEST_OID)
            assert second.value.retry_after == pytest.approx(20)
            assert svc.request_count == 1
            clock.now += 21
            found = await client.search_by_ins("279035121518989", TEST_OID)
            assert client.available and client.stats.failures == 1
            return found

    assert len(run(scenario())) == 1
    assert svc.request_count == 2


def test_retry_after_header_lengthens_the_back_off():
    def handle(request):
        return httpx.Response(503, headers={"retry-after": "120"})

    async def scenario():
        client = IdentityServerClient(
            config(outage_backoff=5), transport=httpx.MockTransport(handle)
        )
        async with client:
            with pytest.raises(IdentityServerUnavailable) as info:
                await client.search_by_ins("279035121518989")
        return info.value

    assert run(scenario()).retry_after == 120


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("garbage"),
        httpx.ReadError("reset"),
    ],
)
def test_transport_failures_are_unavailable(exc):
    def handle(request):
        raise exc

    async def scenario():
        client = IdentityServerClient(config(), transport=httpx.MockTransport(handle))
        async with client:
            with pytest.raises(IdentityServerUnavailable) as info:
                await client.cross_references(Identifier(REGIONAL, "R0001"))
        return info.value

    err = run(scenario())
    assert err.retry_after == 5.0 and type(exc).__name__ in str(err)


@pytest.mark.parametrize(
    "content,status",
    [(b"<html>proxy</html>", 200), (b'{"resourceType": "Patient"}', 200), (b"[1]", 200)],
)
def test_an_answer_that_is_not_a_bundle_is_an_error(content, status):
    def handle(request):
        return httpx.Response(status, content=content)

    async def scenario():
        client = IdentityServerClient(config(), transport=httpx.MockTransport(handle))
        async with client:
            with pytest.raises(IdentityServerError):
                await client.search_by_ins("279035121518989")

    run(scenario())


def test_answers_are_cached_by_query_for_cache_ttl():
    svc = service()
    clock = Clock()

    async def scenario():
        async with mock_client(svc, clock, cache_ttl="60s") as client:
            a = await client.search_by_ins("279035121518989", TEST_OID)
            b = await client.search_by_ins("279035121518989", TEST_OID)
            assert a == b and svc.request_count == 1 and client.stats.cache_hits == 1
            await client.search_by_traits(DOMINIQUE)  # another query: asked
            assert svc.request_count == 2
            none = await client.cross_references(Identifier(CHU_X, "424242"))
            assert none is None
            await client.cross_references(Identifier(CHU_X, "424242"))  # "unknown" cached too
            assert svc.request_count == 3
            clock.now += 61
            await client.search_by_ins("279035121518989", TEST_OID)
            assert svc.request_count == 4

    run(scenario())


def test_the_cache_keeps_at_most_cache_size_answers_dropping_the_least_recent():
    svc = service()

    async def scenario():
        async with mock_client(svc, cache_size=2) as client:
            ask = client.cross_references
            await ask(Identifier(REGIONAL, "R0001"))
            await ask(Identifier(REGIONAL, "R0002"))
            await ask(Identifier(REGIONAL, "R0001"))  # hit: R0001 is now the most recent
            await ask(Identifier(REGIONAL, "R0003"))  # drops R0002
            assert svc.request_count == 3
            await ask(Identifier(REGIONAL, "R0001"))
            assert svc.request_count == 3
            await ask(Identifier(REGIONAL, "R0002"))
            assert svc.request_count == 4

    run(scenario())


def test_cache_ttl_zero_disables_the_cache():
    svc = service()

    async def scenario():
        async with mock_client(svc, cache_ttl=0) as client:
            for _ in range(3):
                await client.search_by_ins("279035121518989", TEST_OID)

    run(scenario())
    assert svc.request_count == 3


def test_concurrent_identical_queries_share_one_request():
    svc = service()
    inner = svc.handle
    calls = []

    async def handle(request):
        calls.append(1)
        await asyncio.sleep(0.05)
        answer = inner(request.method, request.url.raw_path.decode(), dict(request.headers))
        return httpx.Response(answer.status, content=answer.encode())

    async def scenario():
        client = IdentityServerClient(config(), transport=httpx.MockTransport(handle))
        async with client:
            results = await asyncio.gather(
                *(client.search_by_ins("279035121518989", TEST_OID) for _ in range(5))
            )
        return results

    results = run(scenario())
    assert len(calls) == 1 and all(r == results[0] for r in results)


def test_logs_and_reprs_carry_no_patient_data(caplog):
    caplog.set_level(logging.DEBUG)
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            found = await client.search_by_ins("279035121518989", TEST_OID)
            await client.search_by_traits(TraitsQuery("DUPONT", "JEAN", "1962-01-15", "male"))
            await client.cross_references(Identifier(CHU_X, "000003"))
            svc.fail_status = 503
            with pytest.raises(IdentityServerUnavailable) as info:
                await client.search_by_ins("162018885045327")
            return found, info.value

    (patient,), err = run(scenario())
    text = caplog.text + repr(patient) + repr(patient.identifiers) + repr(DOMINIQUE) + str(err)
    assert "HTTP Request" in caplog.text  # httpx's own line is there, without its query
    for secret in SECRETS:
        assert secret not in text


def test_config_defaults_and_checks():
    assert IdentityConfig().server is None
    c = config()
    assert (c.timeout, c.connect_timeout, c.cache_ttl, c.cache_size) == (5.0, 2.0, 300.0, 10000)
    with pytest.raises(ValidationError, match="https"):
        config(tls={"ca": "ca.pem"})
    with pytest.raises(ValidationError, match="together"):
        config(url="https://x/fhir", tls={"cert": "c.pem"})
    with pytest.raises(ValidationError):
        config(regional_id_system="1.2.250.1")  # an OID is written urn:oid:...
    with pytest.raises(ValidationError):
        config(url="ftp://x")


def test_routes_yaml_identity_server_section():
    cfg = load_config_text(
        "identity:\n"
        "  server:\n"
        "    url: https://identite.example/fhir\n"
        "    regional_id_system: urn:oid:1.2.250.1.999.1.1\n"
        "    timeout: 3s\n"
        "    cache_ttl: 10m\n"
        "    tls: {ca: ca.pem, cert: c.pem, key: k.pem}\n",
        "routes.yaml",
        {},
    )
    server = cfg.identity.server
    assert server is not None and server.cache_ttl == 600 and server.timeout == 3
    with pytest.raises(ConfigError) as info:
        load_config_text("identity:\n  server:\n    url: https://x/fhir\n    cache_size: -1\n")
    assert [(i.line, i.message.split(":")[0]) for i in info.value.issues] == [
        (3, "identity.server.regional_id_system"),
        (4, "identity.server.cache_size"),
    ]


def test_fixture_patients_are_valid_for_the_stand_in():
    assert len(service()._patients) == len(PATIENTS)
