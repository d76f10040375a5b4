"""The identity stand-in's FHIR shapes: request checks, answers, patients, no I/O but a file.

Touches: files (:func:`load_patients` reads the patients file); nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.pdqm import BIRTH_LIST_GIVEN_NAME_EXT, BIRTH_PLACE_EXT, INS_OIDS, INSEE_CODE_EXT

__all__ = [
    "FHIR_JSON",
    "INS_OIDS",
    "SYSTEM_URI",
    "PatientEntry",
    "Refused",
    "StandinResponse",
    "Violation",
    "capability_statement",
    "fhir_format",
    "load_patients",
    "outcome",
    "patient_resource",
    "split_unescaped",
    "token",
]

FHIR_JSON = "application/fhir+json; charset=utf-8"
SYSTEM_URI = re.compile(
    r"^(urn:oid:[0-2](\.(0|[1-9][0-9]*))+|urn:[A-Za-z0-9][A-Za-z0-9-]*:\S+|https?://\S+)$"
)
_COMMUNE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
_XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml"})


@dataclass(frozen=True, slots=True)
class Violation:
    """A request the stand-in refused: what was asked and why (parameter names, no values)."""

    method: str
    path: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class StandinResponse:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


class Refused(Exception):
    def __init__(self, status: int, code: str, diagnostics: str, violation: bool = True) -> None:
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.violation = violation
        super().__init__(diagnostics)


def outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def split_unescaped(value: str, sep: str) -> list[str]:
    """Splits on ``sep`` not preceded by a backslash (FHIR search escaping)."""
    parts, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def token(raw: str, name: str) -> tuple[str | None, str]:
    """``system|value`` -> (system, value); ``value`` -> (None, value); checks the system."""
    pieces = split_unescaped(raw, "|")
    if len(pieces) == 1:
        if not pieces[0]:
            raise Refused(400, "invalid", f"{name}: empty token")
        return None, _unescape(pieces[0])
    if len(pieces) != 2:
        raise Refused(400, "invalid", f"{name}: a token is system|value (one unescaped '|')")
    system, value = _unescape(pieces[0]), _unescape(pieces[1])
    if not system and not value:
        raise Refused(400, "invalid", f"{name}: a token needs a system or a value")
    if system and not SYSTEM_URI.match(system):
        raise Refused(
            400,
            "invalid",
            f"{name}: the system of a token is a URI (urn:oid:<oid>, urn:..., http(s)://...)",
        )
    return system, value


def fhir_format(value: str) -> None:
    media = value.split(";", 1)[0].strip().lower()
    if media in _JSON_FORMATS:
        return
    if media in _XML_FORMATS:
        raise Refused(406, "not-supported", "_format: this stand-in answers JSON only")
    raise Refused(400, "invalid", "_format: not a FHIR format (json, xml or a mime type)")


@dataclass
class PatientEntry:
    record: Mapping[str, Any]
    id: str
    identifiers: tuple[tuple[str, str], ...]
    names: tuple[str, ...]  # normalised birth and used names
    given: tuple[str, ...]  # normalised given names


def load_patients(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(regional_system, patient records) from a patients file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("patients"), list):
        raise ValueError(f"{path}: expected {{'regional_system': ..., 'patients': [...]}}")
    return str(data.get("regional_system", "")), list(data["patients"])


def capability_statement() -> dict[str, Any]:
    """The stand-in's CapabilityStatement (``GET [base]/metadata``)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "software": {"name": "eai identity stand-in (not a real identity server)"},
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": n, "type": t}
                            for n, t in (
                                ("_id", "token"),
                                ("active", "token"),
                                ("family", "string"),
                                ("given", "string"),
                                ("identifier", "token"),
                                ("birthdate", "date"),
                                ("gender", "token"),
                                ("birthplace", "token"),
                            )
                        ],
                        "operation": [
                            {
                                "name": "ihe-pix",
                                "definition": "https://profiles.ihe.net/ITI/PIXm/"
                                "OperationDefinition/IHE.PIXm.pix",
                            }
                        ],
                    }
                ],
            }
        ],
    }


def patient_resource(p: PatientEntry) -> dict[str, Any]:
    """The record as an FR Core Patient (the identifier ``type`` slices are left out:
    the INS is recognised by its OID)."""
    r = p.record
    given = [str(g) for g in r.get("given") or ()]
    official: dict[str, Any] = {"use": "official", "family": str(r.get("birth_name", ""))}
    if given:
        official["given"] = given
        official["extension"] = [{"url": BIRTH_LIST_GIVEN_NAME_EXT, "valueString": " ".join(given)}]
    names = [official]
    if r.get("used_name"):
        names.append({"use": "usual", "family": str(r["used_name"])})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p.id,
        "identifier": [{"system": s, "value": v} for s, v in p.identifiers],
        "active": r.get("active", True) is not False,
        "name": names,
    }
    if r.get("gender"):
        resource["gender"] = str(r["gender"])
    if r.get("birth_date"):
        resource["birthDate"] = str(r["birth_date"])
    if r.get("birth_place"):
        coding = {"system": _COMMUNE_SYSTEM, "code": str(r["birth_place"])}
        resource["extension"] = [
            {
                "url": BIRTH_PLACE_EXT,
                "valueAddress": {"extension": [{"url": INSEE_CODE_EXT, "valueCoding": coding}]},
            }
        ]
    if r.get("replaced_by"):
        resource["link"] = [
            {"other": {"reference": f"Patient/{r['replaced_by']}"}, "type": "replaced-by"}
        ]
    return resource
