"""The identity server's failures: an outage (retry later) or a refusal (retrying will not help).

Touches: nothing (reads an answer already received).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from eai.errors import EaiError

__all__ = [
    "IdentityServerError",
    "IdentityServerUnavailable",
    "issue_codes",
    "refused",
    "retry_after",
]


class IdentityServerUnavailable(EaiError):
    """The identity server did not answer (connection, timeout, 408/429/5xx): hold and retry.

    ``retry_after``: seconds before asking again is worth it (``Retry-After`` or the
    configured ``outage_backoff``).
    """

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class IdentityServerError(EaiError):
    """The identity server refused the request (4xx) or answered something that is not FHIR.

    A bad request is our bug or bad data: retrying it unchanged will not help. ``str()``
    names the status and the OperationOutcome issue codes only; ``diagnostics`` keeps the
    server's text, which may quote the request (patient data): never log it.
    """

    def __init__(self, reason: str, status: int = 0, diagnostics: str = "") -> None:
        self.reason = reason
        self.status = status
        self.diagnostics = diagnostics
        super().__init__(reason)


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 0.0


def issue_codes(body: Mapping[str, Any]) -> tuple[str, ...]:
    if body.get("resourceType") != "OperationOutcome":
        return ()
    return tuple(str(i.get("code", "")) for i in body.get("issue") or () if isinstance(i, Mapping))


def refused(kind: str, status: int, body: Mapping[str, Any]) -> IdentityServerError:
    codes = ", ".join(c for c in issue_codes(body) if c) or "no OperationOutcome"
    diagnostics = "; ".join(
        str(i.get("diagnostics", ""))
        for i in (body.get("issue") or ())
        if isinstance(i, Mapping) and i.get("diagnostics")
    )
    return IdentityServerError(
        f"identity server refused the {kind} request: {status} ({codes})", status, diagnostics
    )
