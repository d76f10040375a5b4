"""Checks the patient identity a message carries: the regional charter, and whether
it is qualified enough for destinations that demand it.

Touches: files (reads the charter files once per set of paths).

Severities act after the acknowledgement (the ACK only says the message is
safe): ``reject`` routes the message nowhere; ``hold`` and an unqualified
identity hold its deliveries to destinations with
``require_qualified_identity``; ``warn`` only reports.

A message that embeds a CDA (CI-SIS ORU/MDM) is checked against its document
too: the document's patient, read once by the content parser with
:func:`identity_from_cda` (``recordTarget/patientRole``: ``id`` with an INS OID
as the INS, other ``id`` as local ids under their ``root``; the name with
``family[@qualifier='BR']`` as birth name, ``given[@qualifier='BR']`` as first
given name, unqualified ``given`` as the birth given names, ``SP``/``CL`` as
used name; ``birthTime``; ``administrativeGenderCode``), goes to the charter's
``same_patient_as_document`` check (rule ``CDA-PATIENT-DIFFERENT``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from eai import hl7
from eai.config import Config, ListenerConfig
from eai.content import ParsedContent
from identity.charter import CheckContext, Rule, evaluate_charter, load_charter
from identity.ins import INS_NIA_OID, INS_NIR_DEMO_OID, INS_NIR_OID, INS_NIR_TEST_OID
from identity.patient import LocalId, PatientIdentity, identity_from_hl7
from identity.pdqm import IdentityServerUnavailable
from identity.reconcile import Reconciliation
from identity.status import DEFAULT_TABLE, IdentityStatus

__all__ = [
    "SERVER_UNAVAILABLE",
    "UNQUALIFIED_RULE",
    "IdentityVerdict",
    "Reconciled",
    "identity_from_cda",
    "identity_of",
    "identity_verdict",
    "reload_charter",
]

SERVER_UNAVAILABLE = "identity server unavailable"
"""The hold reason of a delivery whose identity could not be reconciled yet: the
pipeline asks the server again every ``identity.server.retry_every``."""

Reconciled = Reconciliation | IdentityServerUnavailable
"""What the identity server said of a message's identity, or that it could not be asked."""

UNQUALIFIED_RULE = "IDENTITE-NON-QUALIFIEE"
_UNQUALIFIED_TEXT = (
    "L'identité n'est pas qualifiée (statut {status}) : les envois vers le DMP, MSSanté et "
    "les destinations qui exigent une identité qualifiée sont mis en attente. Qualifiez "
    "l'identité (INS récupéré par INSi et pièce d'identité vérifiée, PID-32 = VALI avec "
    "l'INS en PID-3) puis renvoyez un message de mise à jour (A31/A08)."
)


@functools.lru_cache(maxsize=8)
def _rules(paths: tuple[Path, ...]) -> tuple[Rule, ...]:
    return tuple(load_charter(paths))


def reload_charter(paths: tuple[Path, ...]) -> None:
    """Reads the charter files again (a reload); ConfigError, and the rules in use kept,
    when one is invalid."""
    load_charter(paths)  # raises before the rules in use are forgotten
    _rules.cache_clear()


def _status_table(
    listener: ListenerConfig | None,
) -> dict[tuple[str, bool], IdentityStatus] | None:
    if listener is None or not listener.identity_status:
        return None
    table = dict(DEFAULT_TABLE)
    for code, o in listener.identity_status.items():
        table[(code.strip().upper(), True)] = o.with_ins
        table[(code.strip().upper(), False)] = o.without_ins
    return table


def identity_of(
    content: ParsedContent, listener: ListenerConfig | None = None
) -> PatientIdentity | None:
    """The identity a message states, if it carries one (HL7 v2 with a PID today)."""
    msg = content.routable
    if isinstance(msg, hl7.Hl7Message) and msg.segment("PID") is not None:
        return identity_from_hl7(msg, _status_table(listener))
    return None


_V3 = "{urn:hl7-org:v3}"
_INS_OIDS = frozenset({INS_NIR_OID, INS_NIA_OID, INS_NIR_TEST_OID, INS_NIR_DEMO_OID})


def _text(element: etree._Element | None) -> str:
    return "" if element is None else " ".join("".join(element.itertext()).split())


def _attr(element: etree._Element, path: str, name: str) -> str:
    found = element.find(path)
    return "" if found is None else (found.get(name) or "").strip()


def identity_from_cda(document: etree._Element) -> PatientIdentity:
    """The patient a ``ClinicalDocument`` names (``recordTarget``; module docstring)."""
    role = document.find(f"{_V3}recordTarget/{_V3}patientRole")
    if role is None:
        return PatientIdentity()
    ins = ins_oid = ""
    local: list[LocalId] = []
    for element in role.iterfind(f"{_V3}id"):
        value, root = (element.get("extension") or "").strip(), (element.get("root") or "").strip()
        if not value:
            continue
        if root in _INS_OIDS and not ins:
            ins, ins_oid = value, root
        else:
            local.append(LocalId(value, "", root, "PI"))
    birth_name = used_name = first = ""
    given: tuple[str, ...] = ()
    patient = role.find(f"{_V3}patient")
    for name in () if patient is None else patient.iterfind(f"{_V3}name"):
        families = {
            (f.get("qualifier") or "").upper(): _text(f) for f in name.iterfind(f"{_V3}family")
        }
        givens = [(g.get("qualifier") or "").upper() for g in name.iterfind(f"{_V3}given")]
        texts = [_text(g) for g in name.iterfind(f"{_V3}given")]
        birth_name = birth_name or families.get("BR", "") or families.get("", "")
        used_name = used_name or families.get("SP", "") or families.get("CL", "")
        first = first or next((t for q, t in zip(givens, texts, strict=True) if q == "BR"), "")
        unqualified = " ".join(t for q, t in zip(givens, texts, strict=True) if not q)
        given = given or tuple(unqualified.split())
    return PatientIdentity(
        ins=ins,
        ins_oid=ins_oid,
        local_ids=tuple(local),
        birth_name=birth_name,
        used_name=used_name,
        first_given_name=first,
        birth_given_names=given,
        birth_date="" if patient is None else _attr(patient, f"{_V3}birthTime", "value")[:8],
        sex="" if patient is None else _attr(patient, f"{_V3}administrativeGenderCode", "code"),
    )


@dataclass(frozen=True, slots=True)
class IdentityVerdict:
    facility: str
    qualified: bool
    anomalies: tuple[tuple[str, str, str], ...]
    """(rule, severity, explanation)"""
    identity: PatientIdentity | None = None
    server_unavailable: bool = False
    """The identity server could not be asked: strict destinations wait for it."""

    @property
    def reject_reason(self) -> str:
        rules = [r for r, sev, _ in self.anomalies if sev == "reject"]
        return f"identity charter: {', '.join(rules)}" if rules else ""

    @property
    def hold_reason(self) -> str:
        rules = [r for r, sev, _ in self.anomalies if sev == "hold"]
        if rules:
            return f"identity held: {', '.join(rules)}"
        return SERVER_UNAVAILABLE if self.server_unavailable else ""


def identity_verdict(
    config: Config,
    listener: ListenerConfig | None,
    content: ParsedContent,
    reconciled: Reconciled | None = None,
) -> IdentityVerdict | None:
    """``None`` when the message carries no patient identity.

    ``reconciled``: what the regional identity server said (its anomalies join the
    charter's; an identity it holds is not qualified) or that it could not be asked
    (not qualified until it answers; no anomaly: the establishment has nothing to fix).
    """
    ident = identity_of(content, listener)
    if ident is None:
        return None
    test_feed = bool(listener is not None and listener.test_feed)
    ctx = CheckContext(test_feed=test_feed, document_patient=content.document_patient)
    found = evaluate_charter(_rules(tuple(config.identity.charter)), ident, ctx)
    anomalies: list[tuple[str, str, str]] = [(a.rule, a.severity, a.message) for a in found]
    if isinstance(reconciled, Reconciliation):
        anomalies.extend(reconciled.anomalies)
    unavailable = isinstance(reconciled, IdentityServerUnavailable)
    holds = any(sev in ("hold", "reject") for _, sev, _ in anomalies)
    qualified = ident.status == "QUAL" and not holds and not unavailable
    needs_qualified = any(d.needs_qualified_identity(content.facts) for d in config.destinations)
    if ident.status != "QUAL" and not holds and needs_qualified:
        anomalies.append((UNQUALIFIED_RULE, "hold", _UNQUALIFIED_TEXT.format(status=ident.status)))
    return IdentityVerdict(
        ident.facility, qualified, tuple(anomalies), ident, server_unavailable=unavailable
    )
