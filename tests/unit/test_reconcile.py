"""Reconciliation with the regional identity server: search order, each mismatch rule,
unknown / ambiguous / inactive identities, refusals and outages."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from eai import hl7
from identity.patient import PatientIdentity, identity_from_hl7
from identity.pdqm import Identifier, IdentityServerClient, IdentityServerUnavailable
from identity.reconcile import RULES, fhir_birth_date, fhir_gender, reconcile
from tests._identity_server import CHU_X, NIR_OID, SECRETS, config, mock_client, service
from tests._paths import HL7V2

FIXTURE = identity_from_hl7(hl7.parse((HL7V2 / "pamfr_a01_admission.er7").read_bytes()))


def _reconcile(identity: PatientIdentity, svc=None, **kwargs):
    svc = svc or service()

    async def scenario():
        async with mock_client(svc) as client:
            return await reconcile(client, identity, **kwargs)

    result = asyncio.run(scenario())
    assert svc.violations == []
    return result, svc


def _rules(result):
    return [rule for rule, _, _ in result.anomalies]


def test_the_national_fixture_matches_by_ins_with_its_cross_references():
    result, svc = _reconcile(FIXTURE)
    assert (result.outcome, result.searched_by, result.anomalies) == ("matched", "ins", ())
    assert (result.regional_id, result.ins, result.ins_oid) == (
        "R0001",
        "279035121518989",
        "1.2.250.1.213.1.4.10",
    )
    assert Identifier(CHU_X, "000003") in result.cross_references
    assert [r[1] for r in svc.requests] == ["/fhir/Patient", "/fhir/Patient/$ihe-pix"]


@pytest.mark.parametrize(
    "change,rule",
    [
        ({"birth_name": "PAT-QUATRE"}, "SERVEUR-NOM-NAISSANCE"),
        ({"first_given_name": "CLAUDE"}, "SERVEUR-PRENOM"),
        ({"birth_date": "19790329"}, "SERVEUR-DATE-NAISSANCE"),
        ({"sex": "M"}, "SERVEUR-SEXE"),
        ({"birth_place": "75056"}, "SERVEUR-LIEU-NAISSANCE"),
    ],
)
def test_each_trait_that_differs_from_the_server_is_an_anomaly(change, rule):
    result, _ = _reconcile(replace(FIXTURE, **change))
    assert result.outcome == "mismatch" and _rules(result) == [rule]
    assert result.regional_id == "R0001"  # still the identity the INS names
    (_, severity, text) = result.anomalies[0]
    assert severity == "hold" and text == RULES[rule][1]


@pytest.mark.parametrize(
    "change",
    [
        {"birth_name": "pat trois"},
        {"birth_name": "Pât-Trois "},
        {"first_given_name": "dominique"},
        {"birth_date": "197903281230"},
        {"sex": "U"},
        {"sex": ""},
        {"birth_place": ""},
    ],
)
def test_traits_are_compared_normalised_and_only_when_both_sides_have_them(change):
    result, _ = _reconcile(replace(FIXTURE, **change))
    assert result.outcome == "matched" and result.anomalies == ()


def test_without_an_ins_the_traits_are_searched():
    result, svc = _reconcile(replace(FIXTURE, ins="", ins_oid=""))
    assert (result.outcome, result.searched_by, result.regional_id) == (
        "matched",
        "traits",
        "R0001",
    )
    assert "family" in dict(svc.requests[0][2])


def test_an_ins_the_server_does_not_know_for_traits_it_knows_is_serveur_ins():
    other = "277076322082910"  # a valid INS (key 10), not the server's for these traits
    result, _ = _reconcile(replace(FIXTURE, ins=other))
    assert (result.outcome, result.searched_by) == ("mismatch", "traits")
    assert _rules(result) == ["SERVEUR-INS"] and result.regional_id == "R0001"


def test_unknown_ins_and_traits_is_serveur_inconnu():
    unknown = replace(FIXTURE, ins="277076322082910", birth_name="INCONNU")
    result, _ = _reconcile(unknown)
    assert (result.outcome, _rules(result), result.patient) == (
        "unknown",
        ["SERVEUR-INCONNU"],
        None,
    )


def test_a_prefix_match_is_not_the_same_person():
    # PDQm string search matches by prefix: DUPONT finds DUPONT-LAJOIE, who is not DUPONT
    ident = PatientIdentity(birth_name="DUPONT", birth_date="19620115", sex="M")
    result, svc = _reconcile(ident)
    assert result.outcome == "unknown"
    assert svc.requests[0][2][0] == ("family", "DUPONT")


def test_several_server_identities_for_the_traits_is_ambiguous():
    ident = PatientIdentity(
        birth_name="MARTIN", first_given_name="MARIE", birth_date="19900505", sex="F"
    )
    result, _ = _reconcile(ident)
    assert (result.outcome, _rules(result), result.regional_id) == (
        "ambiguous",
        ["SERVEUR-AMBIGU"],
        "",
    )


def test_an_inactive_server_identity_is_reported():
    ident = PatientIdentity(
        ins="146026322000196",
        ins_oid=NIR_OID,
        birth_name="LEGRAND",
        first_given_name="PAUL",
        birth_date="19460210",
        sex="M",
    )
    result, _ = _reconcile(ident)
    assert _rules(result) == ["SERVEUR-IDENTITE-INACTIVE"]
    assert result.patient is not None and result.patient.replaced_by == "Patient/R0001"


@pytest.mark.parametrize(
    "ident",
    [
        PatientIdentity(birth_name="", birth_date="19790328", sex="F"),
        PatientIdentity(birth_name="PAT-TROIS", birth_date="", sex="U"),
        PatientIdentity(birth_name="PAT-TROIS", birth_date="1979", sex=""),
    ],
)
def test_too_few_traits_and_no_ins_asks_nothing(ident):
    result, svc = _reconcile(ident)
    assert (result.outcome, result.anomalies, svc.request_count) == ("skipped", (), 0)


def test_an_ins_alone_is_searched_and_reported_unknown_when_absent():
    result, svc = _reconcile(PatientIdentity(ins="277076322082910", ins_oid=NIR_OID))
    assert (result.outcome, result.searched_by, _rules(result)) == (
        "unknown",
        "ins",
        ["SERVEUR-INCONNU"],
    )
    assert svc.request_count == 1


def test_a_refused_request_is_an_anomaly_not_an_exception():
    def handle(request):
        return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": []})

    async def scenario():
        async with IdentityServerClient(config(), transport=httpx.MockTransport(handle)) as c:
            return await reconcile(c, FIXTURE)

    result = asyncio.run(scenario())
    assert (result.outcome, _rules(result)) == ("refused", ["SERVEUR-REQUETE-REFUSEE"])


def test_an_outage_is_raised_for_the_caller_to_hold_and_retry():
    svc = service()
    svc.fail_status = 503

    async def scenario():
        async with mock_client(svc) as client:
            with pytest.raises(IdentityServerUnavailable) as info:
                await reconcile(client, FIXTURE)
            return info.value

    assert asyncio.run(scenario()).retry_after > 0


def test_severities_can_be_overridden_and_pixm_skipped():
    result, svc = _reconcile(
        replace(FIXTURE, sex="M"), severities={"SERVEUR-SEXE": "warn"}, cross_reference=False
    )
    assert [(r, s) for r, s, _ in result.anomalies] == [("SERVEUR-SEXE", "warn")]
    assert result.cross_references == () and svc.request_count == 1


def test_a_second_message_about_the_patient_is_answered_from_the_cache():
    svc = service()

    async def scenario():
        async with mock_client(svc) as client:
            first = await reconcile(client, FIXTURE)
            second = await reconcile(client, FIXTURE)
            return first, second

    first, second = asyncio.run(scenario())
    assert first == second and svc.request_count == 2


def test_explanations_are_french_actionable_and_never_quote_traits():
    for rule, (severity, text) in RULES.items():
        assert rule.startswith("SERVEUR-") and severity in ("reject", "hold", "warn")
        assert "serveur régional" in text and len(text) > 80
    result, _ = _reconcile(replace(FIXTURE, birth_name="PAT-QUATRE", sex="M"))
    blob = repr(result) + "".join(t for _, _, t in result.anomalies)
    for secret in (*SECRETS, "PAT-QUATRE", "1979", "63220"):
        assert secret not in blob


def test_v2_to_fhir_conversions():
    assert [fhir_gender(c) for c in ("M", "F", "O", "A", "U", "N", "", "x")] == [
        "male",
        "female",
        "other",
        "other",
        "unknown",
        "unknown",
        "",
        "",
    ]
    assert fhir_birth_date("19790328") == "1979-03-28"
    assert fhir_birth_date("197903281230+0100") == "1979-03-28"
    assert fhir_birth_date("1979") == fhir_birth_date("1979032x") == ""
