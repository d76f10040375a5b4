"""The actions an audit record may name, and how each one reads in FHIR and DICOM terms.

Touches: nothing.

A registry: a new auditable action is one :func:`register_action` call. Codes: the
FHIR ``AuditEvent.action`` (C, R, U, D, E), the event type (DICOM PS3.16 CID 400
"Audit Event ID", system ``http://dicom.nema.org/resources/ontology/DCM``, or the
FHIR ``rest`` type for the payload read, as IHE BALP's PatientRead profile has it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "ActionSpec",
    "action_spec",
    "register_action",
]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
REST = "http://terminology.hl7.org/CodeSystem/audit-event-type"


@dataclass(frozen=True)
class ActionSpec:
    """An auditable action: its name in the trail, what it means, and its codes."""

    name: str
    summary: str
    fhir_action: str  # C create, R read, U update, D delete, E execute
    type_system: str
    type_code: str
    type_display: str


ACTIONS: dict[str, ActionSpec] = {}

OUTCOMES = ("success", "failure", "denied")
"""An action done, failed, or refused (a failed login, a caller without the right)."""


def register_action(spec: ActionSpec) -> ActionSpec:
    ACTIONS[spec.name] = spec
    return spec


def action_spec(name: str) -> ActionSpec:
    try:
        return ACTIONS[name]
    except KeyError:
        known = ", ".join(sorted(ACTIONS))
        raise ValueError(f"unknown audit action {name!r}; known: {known}") from None


for _spec in (
    ActionSpec(
        "read-raw", "read a message's payload in clear", "R", REST, "rest", "Restful Operation"
    ),
    ActionSpec("replay", "replay a journaled message", "E", DCM, "110110", "Patient Record"),
    ActionSpec("resend", "send a delivery again", "E", DCM, "110110", "Patient Record"),
    ActionSpec("pause", "pause a destination", "U", DCM, "110100", "Application Activity"),
    ActionSpec("resume", "resume a destination", "U", DCM, "110100", "Application Activity"),
    ActionSpec("identity-release", "release held deliveries", "U", DCM, "110110", "Patient Record"),
    ActionSpec("identity-lookup", "read a patient's cross-reference", "R", DCM, "110112", "Query"),
    ActionSpec("silence", "silence an alert", "U", DCM, "110100", "Application Activity"),
    ActionSpec("login", "log in to the console", "E", DCM, "110114", "User Authentication"),
    ActionSpec("login-failed", "a failed login", "E", DCM, "110114", "User Authentication"),
    ActionSpec("logout", "log out of the console", "E", DCM, "110114", "User Authentication"),
    ActionSpec("config-reload", "reload routes.yaml", "E", DCM, "110100", "Application Activity"),
    ActionSpec("export", "export data (the audit trail)", "R", DCM, "110106", "Export"),
    ActionSpec("purge", "delete records past retention", "D", DCM, "110101", "Audit Log Used"),
):
    register_action(_spec)
