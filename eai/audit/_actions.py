"""The actions an audit record may name, and how each one reads in DICOM and FHIR terms.

Touches: nothing.

A registry: a new auditable action is one :func:`register_action` call. Each has the
DICOM PS3.15 / IHE ATNA ``EventActionCode`` (C, R, U, D, E; also FHIR's
``AuditEvent.action``) and its ``EventID`` from DICOM PS3.16 CID 400 "Audit Event ID"
(system DCM). The payload read is, in FHIR, the ``rest`` / ``read`` event of IHE BALP's
PatientRead profile.
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


@dataclass(frozen=True)
class ActionSpec:
    """An auditable action: its name in the trail, what it means, and its codes."""

    name: str
    summary: str
    action_code: str  # C create, R read, U update, D delete, E execute
    event_code: str  # DICOM CID 400, codeSystemName DCM
    event_display: str
    rest_read: bool = False  # FHIR: type rest, subtype read (IHE BALP PatientRead)


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


_PATIENT = ("110110", "Patient Record")
_APP = ("110100", "Application Activity")
_LOGIN = ("110114", "User Authentication")
_SECURITY = ("110113", "Security Alert")

for _spec in (
    ActionSpec("read-raw", "read a message's payload in clear", "R", *_PATIENT, rest_read=True),
    ActionSpec("replay", "replay a journaled message", "E", *_PATIENT),
    ActionSpec("resend", "send a delivery again", "E", *_PATIENT),
    ActionSpec("pause", "pause a destination", "U", *_APP),
    ActionSpec("resume", "resume a destination", "U", *_APP),
    ActionSpec("identity-release", "release held deliveries", "U", *_PATIENT),
    ActionSpec("identity-lookup", "read a patient's cross-reference", "R", "110112", "Query"),
    ActionSpec("silence", "silence an alert", "U", *_APP),
    ActionSpec("unsilence", "end an alert's silence early", "U", *_APP),
    ActionSpec("login", "log in to the console", "E", *_LOGIN),
    ActionSpec("login-failed", "a failed login", "E", *_LOGIN),
    ActionSpec("logout", "log out of the console", "E", *_LOGIN),
    ActionSpec("account-change", "add, change or disable a console account", "U", *_SECURITY),
    ActionSpec("config-reload", "reload routes.yaml", "E", *_APP),
    ActionSpec("export", "export data (the audit trail)", "R", "110106", "Export"),
    ActionSpec("purge", "delete records past retention", "D", "110101", "Audit Log Used"),
):
    register_action(_spec)
