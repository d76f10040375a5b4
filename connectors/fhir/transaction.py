"""Turn a mapping's Bundle (type collection) into the Bundle a FHIR server executes.

Touches: nothing.

``transaction``: the Patient as a conditional create (``ifNoneExist`` on the qualified
INS, else the local identifier, as configured), practitioners and organisations
conditionally created on their identifier too (they recur in every report), every
other resource POSTed; entries keep their ``urn:uuid:`` fullUrls, so references
between them resolve on the server. ``update``: the same, but each resource other
than the Patient is a conditional update on its first identifier, or an update of
the id its deterministic ``urn:uuid:`` fullUrl gives: sending the Bundle again (a
replay) changes nothing. ``batch``: the ``transaction`` entries in a batch Bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from connectors.fhir.config import PatientMatch, SendMode
from eai.messages import MessageFacts

__all__ = ["BundleError", "INS_OIDS", "Prepared", "prepare"]

INS_OIDS = frozenset(
    {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
)
"""The INS (NIR, NIA and their test OIDs): never a "local" identifier."""
_SHARED = frozenset({"Practitioner", "Organization", "PractitionerRole", "Device", "Location"})
"""Resources that recur across reports: created once, found by identifier after."""


class BundleError(ValueError):
    """The payload cannot be sent as asked (not a Bundle, no way to find the Patient)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """The Bundle to POST and, per entry, what it is (``Patient``...) for error messages."""

    bundle: dict[str, Any]
    labels: tuple[str, ...]


def prepare(
    source: Mapping[str, Any], facts: MessageFacts, mode: SendMode, match: PatientMatch
) -> Prepared:
    """The transaction (or batch) Bundle for ``source`` (its resources are reused, not
    copied: hand it a Bundle of its own); raises :class:`BundleError`."""
    if source.get("resourceType") != "Bundle" or not isinstance(source.get("entry"), list):
        raise BundleError("the payload is not a FHIR Bundle with entries")
    entries: list[dict[str, Any]] = []
    labels: list[str] = []
    for index, entry in enumerate(source["entry"]):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            raise BundleError(f"entry {index} has no resource")
        rtype: str = resource["resourceType"]
        full_url = entry.get("fullUrl")
        request = _request(resource, full_url, facts, mode, match)
        out: dict[str, Any] = {"resource": resource, "request": request}
        if isinstance(full_url, str):
            out["fullUrl"] = full_url
            if request["method"] == "PUT" and "?" not in request["url"]:
                out["resource"]["id"] = request["url"].split("/", 1)[1]
        entries.append(out)
        labels.append(f"{rtype} (entry {index})")
    kind = "batch" if mode == "batch" else "transaction"
    return Prepared({"resourceType": "Bundle", "type": kind, "entry": entries}, tuple(labels))


def _request(
    resource: Mapping[str, Any],
    full_url: object,
    facts: MessageFacts,
    mode: SendMode,
    match: PatientMatch,
) -> dict[str, str]:
    rtype: str = resource["resourceType"]
    if rtype == "Patient":
        return {
            "method": "POST",
            "url": rtype,
            "ifNoneExist": patient_condition(resource, facts, match),
        }
    search = _identifier_search(resource)
    if rtype in _SHARED and search:
        return {"method": "POST", "url": rtype, "ifNoneExist": search}
    if mode == "update":
        if search:
            return {"method": "PUT", "url": f"{rtype}?{search}"}
        if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
            return {"method": "PUT", "url": f"{rtype}/{full_url.removeprefix('urn:uuid:')}"}
    return {"method": "POST", "url": rtype}


def patient_condition(resource: Mapping[str, Any], facts: MessageFacts, match: PatientMatch) -> str:
    """The search that finds this Patient on the server (``ifNoneExist``)."""
    if match != "local":
        if facts.ins:
            return _search(f"urn:oid:{facts.ins_oid or '1.2.250.1.213.1.4.8'}", facts.ins)
        if match == "ins":
            raise BundleError("no qualified INS for the Patient (patient_match: ins)")
    for ident in _identifiers(resource):
        system, value = ident
        if system.removeprefix("urn:oid:") not in INS_OIDS:
            return _search(system, value)
    raise BundleError("the Patient has no local identifier (system and value) to be found by")


def _identifier_search(resource: Mapping[str, Any]) -> str:
    for system, value in _identifiers(resource):
        return _search(system, value)
    return ""


def _identifiers(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    for ident in resource.get("identifier") or ():
        if isinstance(ident, Mapping):
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and isinstance(value, str) and system and value:
                found.append((system, value))
    return found


def _search(system: str, value: str) -> str:
    return "identifier=" + quote(f"{system}|{value}", safe=":/|.")
