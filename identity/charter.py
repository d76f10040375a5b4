"""The regional identification charter: rules from a YAML file, checked on an identity.

Touches: files (reads the charter files).

A rule names a check: a built-in one (``ins_key_valid``, ...) registered in
:data:`CHECKS`, or a generic one (``required``, ``pattern``, ``in``,
``not_in``) written in the YAML itself, so a region adds rules without Python.
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
    "Anomaly",
    "CheckContext",
    "Rule",
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


CheckFn = Callable[[PatientIdentity, CheckContext], bool]
"""True when the identity respects the rule."""


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


CHECKS: dict[str, CheckFn] = {
    "ins_key_valid": _ins_key_valid,
    "ins_oid_coherent": _ins_oid_coherent,
    "first_given_in_birth_given": _first_given_in_birth_given,
    "birth_date_plausible": _birth_date_plausible,
    "birth_place_format": _birth_place_format,
    "status_coherent": _status_coherent,
    "no_test_identity": _no_test_identity,
}


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    reads: tuple[str, ...]
    message: str
    check: CheckFn

    def holds(self, identity: PatientIdentity, ctx: CheckContext) -> bool:
        return self.check(identity, ctx)


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
            if isinstance(check, str):
                if check not in CHECKS:
                    raise ValueError(f"{where}.check: unknown check {check!r}")
                fn = CHECKS[check]
            elif isinstance(check, dict):
                fn = _generic(check, reads, f"{where}.check")
            else:
                raise ValueError(f"{where}.check: a check name or a mapping")
            rules.append(Rule(str(raw["id"]), severity, reads, str(raw.get("message", "")), fn))
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
        Anomaly(r.id, r.severity, r.message, r.reads) for r in rules if not r.holds(identity, ctx)
    ]
