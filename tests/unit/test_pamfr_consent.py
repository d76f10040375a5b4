"""DMP status and consent (PAM FR 2.11 ZFA): routing facts, routes holding DMP publication,
the FR Core Consents of the pamfr-adt mapping (issue 15, point 7)."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

import pytest

import mappings
from eai.config import load_config_text
from eai.content import content_parser
from eai.pipeline import plan_message
from eai.store import Cipher, ClaimedMessage
from mappings._validate import bundle_problems
from tests._paths import HL7V2

A01 = (HL7V2 / "pamfr_a01_consent_dmp.er7").read_bytes()  # ZFA|ACTIF|...|INO|...|IC|...
ORU = (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()  # DESTDMP Y, no ZFA
MDM = (HL7V2 / "mdm_t02_crimg_init.er7").read_bytes()  # DESTDMP Y, no ZFA
_ZFA_LINE = re.compile(rb"^ZFA\|[^\r\n]*", re.MULTILINE)


def zfa(status: str = "ACTIF", feeding: str = "", consultation: str = "") -> bytes:
    """A ZFA segment (PAM FR 2.11 6.14): ZFA-1, ZFA-9 (+ date ZFA-10), ZFA-11 (+ ZFA-12)."""
    fields = [status, "20240306111154", "", "", "", "", "", ""]
    fields += [feeding, "20240306111154" if feeding else "", consultation]
    fields += ["20240306111154" if consultation else ""]
    return b"ZFA|" + "|".join(fields).encode()


def with_zfa(message: bytes, segment: bytes | None) -> bytes:
    """``message`` with its ZFA replaced by ``segment`` (None: removed), or added after PV1."""
    if _ZFA_LINE.search(message):
        return _ZFA_LINE.sub(segment or b"", message, count=1)
    assert segment is not None
    pv1 = re.compile(rb"^(PV1\|[^\r\n]*)", re.MULTILINE)
    return pv1.sub(lambda m: m.group(1) + b"\n" + segment, message, count=1)


def facts(payload: bytes) -> dict[str, str]:
    parser = content_parser("hl7v2")
    assert parser is not None
    return dict(parser(payload, None).facts)


# -- the facts ----------------------------------------------------------------------


def test_the_national_example_gives_its_dmp_facts() -> None:
    assert facts(A01) == {
        "DMP_STATUS": "ACTIF",
        "DMP_OPPOSITION": "N",  # INO: informed, not opposed
        "DMP_CONSULTATION_CONSENT": "Y",  # IC
    }


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (zfa(feeding="IO"), {"DMP_STATUS": "ACTIF", "DMP_OPPOSITION": "Y"}),
        (zfa(feeding="IO^Informé et opposé^IHE-FRANCE-ZFA-9"), {"DMP_OPPOSITION": "Y"}),
        (zfa(feeding="NA", consultation="NA"), {"DMP_OPPOSITION": "NA"}),
        (zfa(feeding="INO", consultation="INC"), {"DMP_CONSULTATION_CONSENT": "N"}),
        (zfa(status="FERME", feeding="OUI"), {"DMP_STATUS": "FERME", "DMP_OPPOSITION": "invalid"}),
        (zfa(status="", feeding='""'), {}),
        (zfa(status="OUVERT"), {"DMP_STATUS": "invalid"}),
    ],
)
def test_zfa_codes_become_facts(segment: bytes, expected: dict[str, str]) -> None:
    got = facts(with_zfa(A01, segment))
    assert expected.items() <= got.items()
    if not expected:
        assert not any(k.startswith("DMP_") for k in got)


def test_no_zfa_no_dmp_fact_and_obsolete_fields_are_not_read() -> None:
    assert facts(with_zfa(A01, None)) == {}
    # ZFA-6/7 (PAM FR 2.10 oppositions to break-glass / SAMU access) are usage X in 2.11
    got = facts(with_zfa(A01, b"ZFA|ACTIF|20240306111154||Y|20240306|Y|Y|20240306"))
    assert got == {"DMP_STATUS": "ACTIF"}


def test_an_oru_carrying_a_zfa_has_both_cisis_and_dmp_facts() -> None:
    got = facts(with_zfa(ORU, zfa(feeding="IO")))
    assert got["DESTDMP"] == "Y"
    assert got["DMP_OPPOSITION"] == "Y"
    assert "DMP_OPPOSITION" not in facts(ORU)


# -- routes holding DMP publication -------------------------------------------------

ROUTES = """\
engine: {data_dir: /tmp/x}
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}
destinations:
  - {name: dmp, type: mllp, host: 127.0.0.1, port: 1}
  - {name: held, type: mllp, host: 127.0.0.1, port: 2}
  - {name: dpi, type: mllp, host: 127.0.0.1, port: 3}
routes:
  - name: to-dmp
    from: [in]
    when:
      all:
        - {fact: DESTDMP, equals: "Y"}
        - {not: {fact: DMP_OPPOSITION, in: ["Y", invalid]}}
    to: [dmp]
  - name: opposed-held
    from: [in]
    when: {fact: DMP_OPPOSITION, in: ["Y", invalid]}
    to: [held]
  - name: adt
    from: [in]
    when: {message_type: [ADT]}
    to: [dpi]
"""

CIPHER = Cipher(os.urandom(32))


def _destinations(payload: bytes) -> list[str]:
    config = load_config_text(ROUTES, "routes.yaml", env={})
    claimed = ClaimedMessage(1, "in", datetime(2026, 1, 1), "hl7v2", "", "", CIPHER.seal(payload))
    plan: Any = plan_message(config, CIPHER, claimed)
    return [d.destination for d in plan.deliveries]


def test_a_route_holds_dmp_publication_for_a_patient_who_opposed() -> None:
    assert _destinations(ORU) == ["dmp"]  # no ZFA: the sender's DESTDMP decides
    assert _destinations(with_zfa(ORU, zfa(feeding="INO"))) == ["dmp"]
    assert _destinations(with_zfa(ORU, zfa(feeding="IO"))) == ["held"]
    assert _destinations(with_zfa(MDM, zfa(feeding="IO"))) == ["held"]
    assert _destinations(with_zfa(ORU, zfa(feeding="X"))) == ["held"]  # unknown code: hold


def test_an_adt_route_sees_the_opposition() -> None:
    assert _destinations(A01) == ["dpi"]
    assert _destinations(with_zfa(A01, zfa(feeding="IO"))) == ["held", "dpi"]


# -- the FHIR Consents --------------------------------------------------------------


def _consents(payload: bytes) -> list[dict[str, Any]]:
    bundle = mappings.convert(payload, "hl7v2", "pamfr-adt")
    assert bundle_problems(bundle, "full") == []
    patient = bundle["entry"][0]["fullUrl"]
    found = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"]
    for consent in found:
        assert consent["patient"]["reference"] == patient
        assert consent["meta"]["profile"] == [
            "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-consent"
        ]
        assert consent["policyRule"]["coding"]  # R4 ppc-1: a policy or a policy rule
    return found


def _decisions(payload: bytes) -> dict[str, str]:
    return {
        c["provision"]["action"][0]["coding"][0]["code"]: c["provision"]["type"]
        for c in _consents(payload)
    }


def test_opposition_to_feeding_is_a_deny_consent() -> None:
    assert _decisions(A01) == {"disclose": "permit", "access": "permit"}
    opposed = with_zfa(A01, zfa(feeding="IO", consultation="INC"))
    assert _decisions(opposed) == {"disclose": "deny", "access": "deny"}
    (feeding, _) = _consents(opposed)
    assert feeding["dateTime"] == "2024-03-06T11:11:54+01:00"
    assert feeding["policyRule"]["coding"][0]["code"] == "OPTOUT"


def test_not_collected_or_unknown_codes_give_no_consent() -> None:
    assert _decisions(with_zfa(A01, zfa(feeding="NA", consultation="NA"))) == {}
    assert _decisions(with_zfa(A01, zfa(feeding="OUI", consultation="IC"))) == {"access": "permit"}
    assert _decisions(with_zfa(A01, None)) == {}
