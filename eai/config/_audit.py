"""The ``audit:`` section of routes.yaml: how long the audit trail is kept, and the SIEM
it is forwarded to (syslog over TLS).

Touches: nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from eai.model import Duration, Model, parse_duration

__all__ = ["AuditConfig", "SyslogConfig"]

_YEARS = re.compile(r"^\s*(\d+)\s*y\s*$")
_YEAR = 365 * 86400.0


def _retention(value: Any) -> float:
    """A duration (``1095d``, seconds) or a number of years (``3y``, 365 days each)."""
    if isinstance(value, str) and (m := _YEARS.match(value)):
        return int(m.group(1)) * _YEAR
    return parse_duration(value)


Retention = Annotated[
    float,
    BeforeValidator(_retention),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d|y)?$"},
            ],
            "description": "seconds, or a string such as 3y, 1095d, 12h",
        }
    ),
]


class SyslogConfig(Model):
    """The region's SIEM: syslog (RFC 5424) over TLS (RFC 5425, octet-counting frames)."""

    host: str = Field(
        description="the syslog server's host name or address", examples=["siem.grades.example"]
    )
    port: int = Field(default=6514, ge=1, le=65535, description="its TLS syslog port (6514)")
    ca: Path | None = Field(
        default=None,
        description="PEM CA bundle that signed the server's certificate; default: system",
    )
    cert: Path | None = Field(
        default=None, description="client certificate, if the SIEM asks for one"
    )
    key: Path | None = Field(default=None, description="private key of cert, when not in its file")
    server_hostname: str | None = Field(
        default=None, description="name to check in the server certificate; default: host"
    )
    format: Literal["dicom", "fhir"] = Field(
        default="dicom",
        description="message body: the IHE ATNA / DICOM PS3.15 audit message XML (dicom) or "
        "the FHIR R4 AuditEvent JSON (fhir)",
    )
    app_name: str = Field(default="eai", pattern=r"^[!-~]{1,48}$", description="RFC 5424 APP-NAME")
    poll: Duration = Field(
        default=2.0, gt=0, le=300, description="how often new records are looked for"
    )
    retry_every: Duration = Field(
        default=30.0, gt=0, description="wait after a failed connection before trying again"
    )
    timeout: Duration = Field(default=10.0, gt=0, description="connect and send timeout")


class AuditConfig(Model):
    """The audit trail of every access to health data (docs/supervision.md)."""

    retention: Retention = Field(
        default=3 * _YEAR,
        gt=0,
        description="records older than this are deleted by the purge job (itself audited); "
        "default 3 years",
        examples=["3y", "1825d"],
    )
    purge_every: Duration = Field(
        default=86400.0, gt=0, description="how often the purge job runs", examples=["1d"]
    )
    syslog: SyslogConfig | None = Field(
        default=None,
        description="forward every record to the region's SIEM (syslog over TLS); unset: "
        "the trail stays in the journal only",
    )
