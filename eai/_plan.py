"""Plans one journaled message: decrypt, parse, reconcile its identity, route, map, seal.

Touches: nothing (pure: the plans are written by :func:`eai.store.apply_plans`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

from eai import compact_json, hl7, routing
from eai._facts import facts_readers, qualified_ins, sealed_facts
from eai.config import Config, ListenerConfig, Route
from eai.content import ParsedContent, content_parser, media_type_of
from eai.errors import EaiError, InputError, StoreError
from eai.hl7 import structure_problem
from eai.identity_gate import Reconciled, identity_of, identity_verdict
from eai.messages import MEDIA_FHIR_JSON
from eai.store import (
    Cipher,
    ClaimedMessage,
    IdentityOp,
    MessagePlan,
    PlannedDelivery,
    XrefRecord,
    XrefRedirect,
    local_ordering_key,
)
from identity.patient import PatientIdentity
from identity.reconcile import Reconciliation

__all__ = ["Parsed", "facts_readers", "identities_of", "parse_all", "plan_all", "plan_message"]

# The pipeline's logger: operators filter on eai.pipeline.
log = logging.getLogger("eai.pipeline")


def _listener(config: Config, name: str) -> ListenerConfig | None:
    for lst in config.listeners:
        if lst.name == name:
            return lst
    return None


def _local_id(ident: PatientIdentity | None) -> str:
    """The establishment's own patient id (the first PID-3 that is not the INS)."""
    if ident is None:
        return ""
    return next((i.value for i in ident.local_ids if i.value.strip()), "")


def _prior_local_id(msg: hl7.Hl7Message) -> str:
    """MRG-1's first identifier that is not an INS (the merged or former local id)."""
    for i in range(1, len(msg.get_all("MRG-1")) + 1):
        value = msg.get(f"MRG-1[{i}].1").strip()
        if value and msg.get(f"MRG-1[{i}].5").strip().upper() != "INS":
            return value
    return ""


def _identity_ops(
    msg: object, ident: PatientIdentity, local: str, reconciled: Reconciled | None
) -> tuple[IdentityOp, ...]:
    """What the message teaches the cross-references: the regional identity the server
    matched, then an A40 merge or an A47 identifier change."""
    ops: list[IdentityOp] = []
    if (
        isinstance(reconciled, Reconciliation)
        and reconciled.outcome == "matched"
        and reconciled.regional_id
    ):
        ops.append(
            XrefRecord(
                ident.facility, local, reconciled.regional_id, reconciled.ins, reconciled.ins_oid
            )
        )
    if isinstance(msg, hl7.Hl7Message):
        trigger = msg.get("MSH-9.2").strip().upper()
        kind: Literal["A40", "A47"] | None = (
            "A40" if trigger == "A40" else "A47" if trigger == "A47" else None
        )
        if kind is not None and (prior := _prior_local_id(msg)):
            ops.append(XrefRedirect(kind, ident.facility, from_id=prior, to_id=local))
    return tuple(ops)


def _parse(
    config: Config, cipher: Cipher, claimed: ClaimedMessage
) -> tuple[bytes, ParsedContent] | MessagePlan:
    parser = content_parser(claimed.content_type)
    if parser is None:
        return MessagePlan(
            claimed.id, "rejected", reason=f"no parser for content type {claimed.content_type}"
        )
    payload = cipher.open(claimed.sealed_payload)
    try:
        return payload, parser(payload, _listener(config, claimed.listener))
    except InputError as exc:
        return MessagePlan(claimed.id, "rejected", reason=exc.reason)


Parsed = tuple[bytes, ParsedContent] | MessagePlan
"""A message decrypted and parsed, or the plan that rejects it."""


def parse_all(
    config: Config, cipher: Cipher, claimed: Iterable[ClaimedMessage]
) -> dict[int, Parsed]:
    """Each message parsed once, for :func:`identities_of` then :func:`plan_all` (no I/O).
    A message that cannot even be read is left out: planning reports it."""
    out: dict[int, Parsed] = {}
    for c in claimed:
        try:
            out[c.id] = _parse(config, cipher, c)
        except Exception:  # noqa: BLE001 - plan_message reports it
            continue
    return out


def identities_of(
    config: Config, claimed: Iterable[ClaimedMessage], parsed: Mapping[int, Parsed]
) -> dict[int, PatientIdentity]:
    """The patient identity each message states, for the identity server (no I/O)."""
    out: dict[int, PatientIdentity] = {}
    for c in claimed:
        p = parsed.get(c.id)
        if p is None or isinstance(p, MessagePlan):
            continue
        ident = identity_of(p[1], _listener(config, c.listener))
        if ident is not None:
            out[c.id] = ident
    return out


def plan_message(
    config: Config,
    cipher: Cipher,
    claimed: ClaimedMessage,
    reconciled: Reconciled | None = None,
    parsed: Parsed | None = None,
    *,
    readers: frozenset[str] | None = None,
) -> MessagePlan:
    """Decides the fate of one journaled message under ``config`` (no I/O).

    ``reconciled``: what the regional identity server said of the message's identity
    (None when there is no server, or the message states no identity); ``parsed``: the
    message already parsed by :func:`parse_all`; ``readers``: :func:`facts_readers` of
    ``config`` (computed when not given): only their deliveries get the sealed facts."""
    if parsed is None:
        parsed = _parse(config, cipher, claimed)
    if isinstance(parsed, MessagePlan):
        return parsed
    payload, content = parsed
    msg = content.routable
    key = content.patient
    id_hashes = tuple(sorted({cipher.hash_id(i) for i in key.identifiers}))
    verdict = identity_verdict(config, _listener(config, claimed.listener), content, reconciled)
    facility = verdict.facility if verdict else ""
    found = verdict.anomalies if verdict else ()
    ident = verdict.identity if verdict else None
    local = _local_id(ident)
    patient_local: tuple[str, str] | None = None
    ops: tuple[IdentityOp, ...] = ()
    if ident is not None and local:
        patient_local = (ident.facility, cipher.hash_id(local))
        patient_key = local_ordering_key(cipher, ident.facility, local)
        ops = _identity_ops(msg, ident, local, reconciled)
    else:
        patient_key = cipher.hash_id(key.ordering_key)
    warnings = content.warnings
    if verdict is not None and verdict.reject_reason:
        return MessagePlan(
            claimed.id,
            "rejected",
            patient_id_hashes=id_hashes,
            control_id=content.control_id,
            reason=verdict.reject_reason,
            facility=facility,
            anomalies=found,
            warnings=warnings,
        )
    # A refused document's facts (DESTDMP...) route nothing; the refusal is the problem.
    decision = routing.evaluate(
        config.routes, claimed.listener, msg, content.facts, facts_usable=not content.problem
    )
    routes = [r for r in config.routes if r.name in decision.routes]
    problem: str | None = content.problem or None
    if any(r.validate_structure for r in routes):
        structure = structure_problem(msg) if isinstance(msg, hl7.Hl7Message) else None
        if structure is not None:
            routes = [r for r in routes if not r.validate_structure]
            problem = "; ".join(p for p in (problem, structure) if p)
    bundles: dict[str, bytes] = {}
    mapped: dict[str, str] = {}
    if any(r.map_ for r in routes):
        routes, bundles, map_problem, flagged = _map_routes(
            cipher, claimed, payload, content, routes, mapped
        )
        warnings = (*warnings, *flagged)
        problem = "; ".join(p for p in (problem, map_problem) if p) or None
    by_dest: dict[str, str] = {}
    for route in routes:
        for dest in route.to:
            by_dest.setdefault(dest, route.name)
    if not by_dest:
        status = "filtered" if problem is None else "rejected"
        return MessagePlan(
            claimed.id,
            status,
            patient_id_hashes=id_hashes,
            control_id=content.control_id,
            reason=problem or "",
            facility=facility,
            anomalies=found,
            patient_local=patient_local,
            identity_ops=ops,
            warnings=warnings,
        )
    qualified = verdict is not None and verdict.qualified
    held = (
        ""
        if qualified
        else (verdict.hold_reason or "identity not qualified" if verdict else "no patient identity")
    )
    strict = {d.name for d in config.destinations if d.needs_qualified_identity(content.facts)}
    as_received = media_type_of(claimed.content_type)
    if readers is None:
        readers = facts_readers(config)
    # Sealed once for the deliveries whose destination reads them (none for MLLP, DICOM).
    facts = (
        sealed_facts(cipher, content, ident if qualified else None)
        if not readers.isdisjoint(by_dest)
        else None
    )
    return_to = {r.name: r.business_acks or "" for r in routes}
    return MessagePlan(
        claimed.id,
        "processed",
        routes=tuple(r.name for r in routes),
        deliveries=tuple(
            PlannedDelivery(
                d,
                route,
                held=held if d in strict else "",
                payload=bundles.get(route) or _route_payload(cipher, content, routes, route),
                media_type=MEDIA_FHIR_JSON if route in mapped else as_received,
                mapping=mapped.get(route, ""),
                facts=facts if d in readers else None,
                return_to=return_to[route],
            )
            for d, route in by_dest.items()
        ),
        reason=problem or "",
        patient_key=patient_key,
        patient_id_hashes=id_hashes,
        control_id=content.control_id,
        facility=facility,
        anomalies=found,
        release_held=qualified,
        qualified_facts=(
            qualified_ins(cipher, ident) if qualified and not readers.isdisjoint(strict) else None
        ),
        patient_local=patient_local,
        identity_ops=ops,
        warnings=warnings,
    )


MAP_VALIDATION: Literal["full", "light", "cached"] = "cached"
"""FHIR check of a route's Bundle in the pipeline: ``cached`` (fhir.resources validation,
its structural checks remembered per shape), ``light`` (the element walk,
~10x cheaper) or ``full`` (fhir.resources models); see mappings._validate."""


def _map_routes(
    cipher: Cipher,
    claimed: ClaimedMessage,
    payload: bytes,
    content: ParsedContent,
    routes: list[Route],
    mapped: dict[str, str],
) -> tuple[list[Route], dict[str, bytes], str, tuple[str, ...]]:
    """Convert the message once per mapping named by ``routes`` (``map:``); ``mapped``
    gets the mapping used by each route kept (``auto`` resolved).

    Returns the routes kept (a route whose mapping fails is dropped, fail
    closed), the sealed Bundle JSON by route name, the problems (no
    patient data: mapping reasons name rules and elements, never values) and
    the warnings the mappings left in their Bundles (``urn:eai:mapping-flag``).
    """
    import mappings  # lazy: no mapping work unless a matched route has `map`

    done: dict[str, bytes | str] = {}
    kept: list[Route] = []
    sealed: dict[str, bytes] = {}
    problems: list[str] = []
    flagged: list[str] = []
    for route in routes:
        if not route.map_:
            kept.append(route)
            continue
        name = route.map_
        if name == mappings.AUTO:
            name = mappings.default_mapping_for(claimed.content_type, content.routable) or ""
        if name not in done:
            done[name] = _convert(cipher, claimed, payload, content, name, flagged)
        result = done[name]
        if isinstance(result, bytes):
            kept.append(route)
            sealed[route.name] = result
            mapped[route.name] = name
        else:
            problems.append(f"route {route.name}: {result}")
    return kept, sealed, "; ".join(problems), tuple(flagged)


def _convert(
    cipher: Cipher,
    claimed: ClaimedMessage,
    payload: bytes,
    content: ParsedContent,
    name: str,
    flagged: list[str],
) -> bytes | str:
    """The sealed Bundle JSON (UTF-8) of mapping ``name``, or why there is none; the
    Bundle's mapping flags are added to ``flagged``."""
    import mappings

    if not name:
        return f"no mapping takes {claimed.message_type or claimed.content_type}"
    try:
        bundle = mappings.convert(
            payload, claimed.content_type, name, parsed=content.routable, validation=MAP_VALIDATION
        )
    except EaiError as exc:
        return str(exc)
    flagged.extend(mappings.bundle_warnings(bundle, name))
    return cipher.seal(compact_json.dumps(bundle))


def _route_payload(
    cipher: Cipher, content: ParsedContent, routes: list[Route], name: str
) -> bytes | None:
    """The sealed payload of a delivery by route ``name`` when the content makes one per route."""
    if content.for_route is None:
        return None
    route = next(r for r in routes if r.name == name)
    payload = content.for_route(route)
    return None if payload is None else cipher.seal(payload)


def plan_all(
    config: Config,
    cipher: Cipher,
    claimed: Iterable[ClaimedMessage],
    reconciled: Mapping[int, Reconciled] | None = None,
    parsed: Mapping[int, Parsed] | None = None,
) -> list[MessagePlan]:
    plans = []
    readers = facts_readers(config)
    for c in claimed:
        try:
            plans.append(
                plan_message(
                    config,
                    cipher,
                    c,
                    (reconciled or {}).get(c.id),
                    (parsed or {}).get(c.id),
                    readers=readers,
                )
            )
        except StoreError as exc:
            log.error("message %d cannot be read: %s", c.id, exc)
            plans.append(MessagePlan(c.id, "rejected", reason=str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad message never stops the flow
            log.exception("message %d failed in the pipeline", c.id)
            plans.append(
                MessagePlan(c.id, "rejected", reason=f"pipeline error: {type(exc).__name__}")
            )
    return plans
