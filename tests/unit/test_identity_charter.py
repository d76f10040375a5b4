"""The regional charter: every bundled rule on the fixtures and on wrong variants."""

from dataclasses import replace
from datetime import date

import pytest

from eai import hl7
from identity.charter import CheckContext, evaluate_charter, load_charter
from identity.patient import identity_from_hl7
from tests._paths import HL7V2

RULES = load_charter()
TEST_FEED = CheckContext(test_feed=True, today=date(2026, 11, 23))
PROD = CheckContext(test_feed=False, today=date(2026, 11, 23))


def _fixture_identity(name="pamfr_a01_admission.er7"):
    return identity_from_hl7(hl7.parse((HL7V2 / name).read_bytes()))


def _broken(identity, ctx=TEST_FEED):
    return {a.rule for a in evaluate_charter(RULES, identity, ctx)}


def test_traits_read_from_pam_fr_pid():
    p = _fixture_identity()
    assert p.ins == "279035121518989" and p.ins_oid == "1.2.250.1.213.1.4.10"
    assert p.birth_name == "PAT-TROIS" and p.first_given_name == "DOMINIQUE"
    assert p.birth_given_names == ("DOMINIQUE",)
    assert (p.birth_date, p.sex, p.birth_place) == ("19790328", "F", "63220")
    assert p.pid32 == "VALI" and p.status == "QUAL"
    assert p.local_ids[0].value == "000003" and p.local_ids[0].type == "PI"
    assert "PAT-TROIS" not in repr(p)


@pytest.mark.parametrize(
    "name", ["pamfr_a01_admission.er7", "pamfr_a01_consent_dmp.er7", "pamfr_a03_sortie.er7"]
)
def test_national_fixtures_respect_the_charter_on_a_test_feed(name):
    assert _broken(_fixture_identity(name)) == set()


def test_test_oid_refused_in_production():
    assert {"INS-OID", "IDENTITE-TEST"} <= _broken(_fixture_identity(), PROD)


@pytest.mark.parametrize(
    "change,rule",
    [
        ({"ins": "279035121518988"}, "INS-CLE"),
        ({"ins_oid": "1.2.3.4"}, "INS-OID"),
        ({"birth_name": ""}, "NOM-NAISSANCE"),
        ({"first_given_name": "CLAUDE"}, "PRENOM-PREMIER"),
        ({"birth_date": "20991231"}, "DATE-NAISSANCE"),
        ({"birth_date": "19790230"}, "DATE-NAISSANCE"),
        ({"birth_date": ""}, "DATE-NAISSANCE"),
        ({"sex": "X"}, "SEXE"),
        ({"birth_place": "6322"}, "LIEU-NAISSANCE"),
        ({"birth_place": ""}, "LIEU-NAISSANCE"),
        ({"pid32": "QUAL", "ins": ""}, "STATUT-INS"),
    ],
)
def test_each_rule_fires_on_its_defect(change, rule):
    assert rule in _broken(replace(_fixture_identity(), **change))


def test_corsica_birth_place_and_abroad_are_valid():
    assert "LIEU-NAISSANCE" not in _broken(replace(_fixture_identity(), birth_place="2A004"))
    assert "LIEU-NAISSANCE" not in _broken(replace(_fixture_identity(), birth_place="99134"))


def test_test_identity_in_production():
    p = replace(_fixture_identity(), ins_oid="1.2.250.1.213.1.4.8", birth_name="TEST")
    assert "IDENTITE-TEST" in _broken(p, PROD)


def test_messages_are_actionable_french_without_traits():
    p = replace(_fixture_identity(), birth_name="")
    (a,) = [a for a in evaluate_charter(RULES, p, TEST_FEED) if a.rule == "NOM-NAISSANCE"]
    assert a.severity == "hold" and "PID-5" in a.message and "PAT-TROIS" not in a.message
