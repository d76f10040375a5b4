"""INS key, OID, identity status and trait normalisation (examples from docs-fr.md)."""

import pytest

from identity.ins import (
    INS_NIA_OID,
    INS_NIR_DEMO_OID,
    INS_NIR_OID,
    INS_NIR_TEST_OID,
    check_ins,
    ins_key,
)
from identity.status import identity_status
from identity.traits import normalise_trait, same_trait

GOOD = [
    "279035121518989",
    "162018885045327",
    "146026322000196",
    "297022A02077878",
    "236066322083656",
    "277076322082910",
]


@pytest.mark.parametrize("ins", GOOD)
def test_published_examples_are_valid(ins):
    assert check_ins(ins).valid, check_ins(ins).reason
    assert check_ins(ins, INS_NIR_OID).kind == "INS-NIR"


def test_corsica_key():
    assert ins_key("297022A020778") == 78
    assert ins_key("297022B020778") != 78


@pytest.mark.parametrize("ins", [g[:13] + f"{(int(g[13:]) % 97) + 1:02d}" for g in GOOD])
def test_wrong_key_names_the_expected_one(ins):
    res = check_ins(ins)
    assert not res.valid and "the number gives" in res.reason


@pytest.mark.parametrize(
    "bad,why",
    [
        ("27903512151898", "15 characters"),
        ("2790351215189891", "15 characters"),
        ("27903512151X989", "unexpected characters"),
        ("979035121518989", "unexpected characters"),
        ("", "15 characters"),
    ],
)
def test_shape_errors(bad, why):
    assert why in check_ins(bad).reason


def test_oids():
    ins = "279035121518989"
    assert check_ins(ins, INS_NIA_OID).kind == "INS-NIA"
    assert check_ins(ins, "urn:oid:" + INS_NIR_OID).valid
    assert not check_ins(ins, INS_NIR_TEST_OID).valid
    assert "test feed" in check_ins(ins, INS_NIR_TEST_OID).reason
    assert not check_ins(ins, INS_NIR_DEMO_OID).valid
    assert check_ins(ins, INS_NIR_TEST_OID, allow_test_oids=True).valid
    assert "not an INS OID" in check_ins(ins, "1.2.3").reason


@pytest.mark.parametrize(
    "pid32,has_ins,expected",
    [
        ("VALI", True, "QUAL"),
        ("VALI", False, "VALI"),
        ("PROV", True, "RECUP"),
        ("PROV", False, "PROV"),
        ("QUAL", False, "QUAL"),
        ("RECUP", True, "RECUP"),
        ("", True, "PROV"),
        ("DOUT", True, "PROV"),
        ("vali", True, "QUAL"),
    ],
)
def test_identity_status_table(pid32, has_ins, expected):
    assert identity_status(pid32, has_ins) == expected


def test_traits_normalised_for_comparison_only():
    assert normalise_trait("Dupont-Lajoie d’Éste ") == "DUPONT LAJOIE D ESTE"
    assert same_trait("PAT-TROIS", "pat trois")
    assert same_trait("Hélène", "HELENE")
    assert not same_trait("Anne", "Anna")


def test_cli_check_ins():
    from click.testing import CliRunner

    from eai.cli import cli

    ok = CliRunner().invoke(cli, ["identity", "check-ins", "279035121518989", "--oid", INS_NIR_OID])
    assert ok.exit_code == 0 and ok.output.strip() == "valid INS-NIR"
    bad = CliRunner().invoke(cli, ["identity", "check-ins", "279035121518988"])
    assert bad.exit_code == 1 and "the number gives 89" in bad.output
    test = CliRunner().invoke(
        cli, ["identity", "check-ins", "279035121518989", "--oid", INS_NIR_TEST_OID]
    )
    assert test.exit_code == 1
