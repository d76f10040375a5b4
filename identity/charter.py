"""The regional identification charter: rules from a YAML file, checked on an identity.

Touches: files (reads the charter files).

A rule names a check: a built-in one (``ins_key_valid``, ...) registered in
:data:`CHECKS`, or a generic one (``required``, ``pattern``, ``in``,
``not_in``) written in the YAML itself, so a region adds rules without Python.

A check sees the identity the message states (HL7 v2: the PID) and its
:class:`CheckContext`; when the message embeds a document (a CDA in an
ORU/MDM), the context holds the document's patient (``recordTarget``) and
``same_patient_as_document`` compares the two (see :func:`document_patient_differs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml

from eai.errors import ConfigError, ConfigIssue
from identity.ins import (
    INS_NIA_OID,
    INS_NIR_DEMO_OID,
    INS_NIR_OID,
    INS_NIR_TEST_OID,
    check_ins,
)
from identity.patient import PatientIdentity
from identity.traits import normalise_trait

__all__ = [
    "BUNDLED_CHARTER",
    "CHECKS",
    "EXPLAINS",
    "Anomaly",
    "CheckContext",
    "Rule",
    "document_patient_differs",
    "evaluate_charter",
    "load_charter",
]

BUNDLED_CHARTER = Path(__file__).with_name("charter.yaml")
Severity = Literal["reject", "hold", "warn"]
_SEVERITIES = ("reject", "hold", "warn")
_ALL_INS_OIDS = (INS_NIR_OID, INS_NIA_OID, INS_NIR_TEST_OID, INS_NIR_DEMO_OID)


@dataclass(frozen=True, slots=True)
class CheckContext:
    test_feed: bool = False
    today: date | None = None
    document_patient: PatientIdentity | None = None
    """The patient of the document the message embeds (a CDA's ``recordTarget``), if any."""


CheckFn = Callable[[PatientIdentity, CheckContext], bool]
"""True when the identity respects the rule."""
ExplainFn = Callable[[PatientIdentity, CheckContext], str]
"""What a broken built-in check adds to the rule's message: which identifier or trait,
never its value ("" for nothing)."""


def _ins_key_valid(p: PatientIdentity, ctx: CheckContext) -> bool:
    return not p.ins or check_ins(p.ins).valid


def _ins_oid_coherent(p: PatientIdentity, ctx: CheckContext) -> bool:
    if not p.ins:
        return True
    allowed = _ALL_INS_OIDS if ctx.test_feed else (INS_NIR_OID, INS_NIA_OID)
    return p.ins_oid in allowed


def _first_given_in_birth_given(p: PatientIdentity, ctx: CheckContext) -> bool:
    if not p.birth_given_names:
        return True
    return bool(p.first_given_name) and normalise_trait(p.birth_given_names[0]) == (
        normalise_trait(p.first_given_name)
    )


def _birth_date_plausible(p: PatientIdentity, ctx: CheckContext) -> bool:
    text = p.birth_date[:8]
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        born = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    today = ctx.today or date.today()
    return date(1880, 1, 1) <= born <= today


_BIRTH_PLACE = re.compile(r"^(\d{5}|2[AB]\d{3})$")


def _birth_place_format(p: PatientIdentity, ctx: CheckContext) -> bool:
    if not p.birth_place:
        return p.status != "QUAL"
    return bool(_BIRTH_PLACE.match(p.birth_place))


def _status_coherent(p: PatientIdentity, ctx: CheckContext) -> bool:
    return not (p.pid32.upper() in ("QUAL", "RECUP") and not p.ins)


_TEST_NAMES = frozenset({"TEST", "ESSAI", "FICTIF", "FICTIVE", "DEMO", "ZZTEST"})


def _no_test_identity(p: PatientIdentity, ctx: CheckContext) -> bool:
    if ctx.test_feed:
        return True
    if p.ins and p.ins_oid not in ("", INS_NIR_OID, INS_NIA_OID):
        return False
    return normalise_trait(p.birth_name) not in _TEST_NAMES


def _same_ins(a: str, b: str) -> bool:
    return "".join(a.split()).upper() == "".join(b.split()).upper()


def _names(p: PatientIdentity) -> set[str]:
    return {n for n in (normalise_trait(p.birth_name), normalise_trait(p.used_name)) if n}


def _first_given(p: PatientIdentity) -> set[str]:
    """The first given name as either place may carry it (PID-5.2 / CDA ``given BR``, or the
    first of the birth given names): senders fill one or the other."""
    candidates = (p.first_given_name, p.birth_given_names[0] if p.birth_given_names else "")
    return {g for g in (normalise_trait(c) for c in candidates) if g}


def _dates_differ(a: str, b: str) -> bool:
    """YYYYMMDD prefixes compared on the precision both give (at least the year)."""
    a, b = a.strip()[:8], b.strip()[:8]
    n = min(len(a), len(b))
    return n >= 4 and a[:n].isdigit() and b[:n].isdigit() and a[:n] != b[:n]


def document_patient_differs(p: PatientIdentity, doc: PatientIdentity) -> str:
    """What tells the message's patient ``p`` from its document's ``doc`` ("" when nothing
    does): the name of the first identifier or trait that differs, never a value.

    After normalisation (:func:`identity.traits.normalise_trait`), in order: when both
    carry an INS, the INS alone decides (the national identifier); else a local id under
    the same assigning authority OID (PID-3 CX.4.2 / ``patientRole/id/@root``); then the
    traits: birth family name (or any family name when one side has no birth name),
    first given name, birth date (on the common precision), sex (M/F only). A trait one
    side does not give is not compared: absent is not different.
    """
    if p.ins and doc.ins:
        return "" if _same_ins(p.ins, doc.ins) else "ins"
    for mine in p.local_ids:
        for theirs in doc.local_ids:
            same_authority = mine.authority_oid and mine.authority_oid == theirs.authority_oid
            if same_authority and mine.value.strip() != theirs.value.strip():
                return "local_id"
    if p.birth_name and doc.birth_name:
        if normalise_trait(p.birth_name) != normalise_trait(doc.birth_name):
            return "birth_name"
    elif _names(p) and _names(doc) and not _names(p) & _names(doc):
        return "birth_name"
    if _first_given(p) and _first_given(doc) and not _first_given(p) & _first_given(doc):
        return "first_given_name"
    if _dates_differ(p.birth_date, doc.birth_date):
        return "birth_date"
    sexes = {p.sex.strip().upper(), doc.sex.strip().upper()}
    if sexes == {"M", "F"}:
        return "sex"
    return ""


def _same_patient_as_document(p: PatientIdentity, ctx: CheckContext) -> bool:
    doc = ctx.document_patient
    return doc is None or not document_patient_differs(p, doc)


_DIFFERENCE_FR = {
    "ins": "l'INS",
    "local_id": "l'identifiant local",
    "birth_name": "le nom de naissance",
    "first_given_name": "le premier prénom",
    "birth_date": "la date de naissance",
    "sex": "le sexe",
}


def _document_difference(p: PatientIdentity, ctx: CheckContext) -> str:
    doc = ctx.document_patient
    found = document_patient_differs(p, doc) if doc is not None else ""
    return f"Différence constatée : {_DIFFERENCE_FR[found]}." if found else ""


CHECKS: dict[str, CheckFn] = {
    "ins_key_valid": _ins_key_valid,
    "ins_oid_coherent": _ins_oid_coherent,
    "first_given_in_birth_given": _first_given_in_birth_given,
    "birth_date_plausible": _birth_date_plausible,
    "birth_place_format": _birth_place_format,
    "status_coherent": _status_coherent,
    "no_test_identity": _no_test_identity,
    "same_patient_as_document": _same_patient_as_document,
}
EXPLAINS: dict[str, ExplainFn] = {"same_patient_as_document": _document_difference}
"""Built-in checks that can say what they found (see :data:`ExplainFn`)."""


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    reads: tuple[str, ...]
    message: str
    check: CheckFn
    explain: ExplainFn | None = None

    def holds(self, identity: PatientIdentity, ctx: CheckContext) -> bool:
        return self.check(identity, ctx)

    def explanation(self, identity: PatientIdentity, ctx: CheckContext) -> str:
        """The message, and what the check found when it can say (no trait values)."""
        found = self.explain(identity, ctx) if self.explain is not None else ""
        return f"{self.message} {found}" if found and self.message else found or self.message


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A rule an identity broke (no trait values: what to fix, not what was sent)."""

    rule: str
    severity: Severity
    message: str
    reads: tuple[str, ...]


def _generic(spec: Mapping[str, Any], reads: Sequence[str], where: str) -> CheckFn:
    if len(spec) != 1:
        raise ValueError(f"{where}: a check has exactly one of required, pattern, in, not_in")
    ((kind, arg),) = spec.items()
    fields = tuple(reads)
    if kind == "required":
        return lambda p, ctx: all(p.trait(f).strip() for f in fields)
    if kind == "pattern":
        rx = re.compile(str(arg))
        return lambda p, ctx: all(not p.trait(f) or rx.search(p.trait(f)) for f in fields)
    if kind in ("in", "not_in"):
        values = frozenset(str(v) for v in arg)
        if kind == "in":
            return lambda p, ctx: all(not p.trait(f) or p.trait(f) in values for f in fields)
        return lambda p, ctx: all(p.trait(f) not in values for f in fields)
    raise ValueError(f"{where}: unknown check {kind!r}")


def _rules_from(path: Path) -> list[Rule]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            [ConfigIssue(str(path), 1, 1, f"cannot read the charter: {exc}")]
        ) from exc
    rules: list[Rule] = []
    for i, raw in enumerate((data or {}).get("rules", [])):
        where = f"rules[{i}]"
        try:
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: a rule is a mapping")
            unknown = set(raw) - {"id", "severity", "reads", "check", "message"}
            if unknown:
                raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
            severity = raw.get("severity")
            if severity not in _SEVERITIES:
                raise ValueError(f"{where}.severity: one of reject, hold, warn")
            reads = tuple(str(r) for r in raw.get("reads", ()))
            check = raw.get("check")
            explain: ExplainFn | None = None
            if isinstance(check, str):
                if check not in CHECKS:
                    raise ValueError(f"{where}.check: unknown check {check!r}")
                fn, explain = CHECKS[check], EXPLAINS.get(check)
            elif isinstance(check, dict):
                fn = _generic(check, reads, f"{where}.check")
            else:
                raise ValueError(f"{where}.check: a check name or a mapping")
            message = str(raw.get("message", ""))
            rules.append(Rule(str(raw["id"]), severity, reads, message, fn, explain))
        except (KeyError, ValueError, re.error) as exc:
            raise ConfigError([ConfigIssue(str(path), 1, 1, str(exc))]) from exc
    return rules


def load_charter(extra: Sequence[Path] = ()) -> list[Rule]:
    """The bundled rules, then each extra file's (same id replaces, new id appends)."""
    by_id: dict[str, Rule] = {}
    for path in (BUNDLED_CHARTER, *extra):
        for rule in _rules_from(path):
            by_id[rule.id] = rule
    return list(by_id.values())


def evaluate_charter(
    rules: Sequence[Rule], identity: PatientIdentity, ctx: CheckContext | None = None
) -> list[Anomaly]:
    ctx = ctx or CheckContext()
    return [
        Anomaly(r.id, r.severity, r.explanation(identity, ctx), r.reads)
        for r in rules
        if not r.holds(identity, ctx)
    ]
