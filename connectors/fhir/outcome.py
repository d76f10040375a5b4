"""Read a FHIR server's answer: delivered, retry (and when), or refused (and why).

Touches: nothing.

2xx with a transaction/batch-response whose entries are all 2xx: delivered, with the
ids the server gave (``Patient/123``...); 408, 429, 5xx: transient, with the
``Retry-After`` delay (seconds or an HTTP date); any other status: permanent, with
the ``OperationOutcome`` issues (severity, code, diagnostics, expression). A batch
with failed entries is permanent, each failure named by its entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import DeliveryResult

__all__ = ["TRANSIENT_STATUSES", "describe_outcome", "retry_after", "verdict"]

TRANSIENT_STATUSES = frozenset({408, 429})
"""Besides 5xx: worth another attempt."""
_MAX_RETRY_AFTER = 24 * 3600.0
_MAX_DETAIL = 8000


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), _MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, min((when - now).total_seconds(), _MAX_RETRY_AFTER))


def describe_outcome(outcome: object) -> str:
    """``severity code: diagnostics (at expression)`` per issue, ``; `` between them."""
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in outcome.get("issue") or ():
        if not isinstance(issue, Mapping):
            continue
        text = f"{issue.get('severity', '?')} {issue.get('code', '?')}"
        said = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if said:
            text += f": {said}"
        where = issue.get("expression") or issue.get("location")
        if isinstance(where, list) and where:
            text += f" (at {', '.join(map(str, where))})"
        parts.append(text)
    return "; ".join(parts)


def verdict(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    labels: Sequence[str],
    now: datetime,
    where: str,
) -> DeliveryResult:
    """The delivery's outcome from the HTTP answer; raises the delivery errors."""
    parsed = _json(body)
    if status >= 500 or status in TRANSIENT_STATUSES:
        wait = retry_after(headers.get("retry-after"), now)
        said = describe_outcome(parsed)
        detail = f"{where} answered HTTP {status}" + (f": {said}" if said else "")
        if wait is not None:
            detail += f" (retry after {wait:g} s)"
        raise TransientDeliveryError(_cut(detail), retry_after=wait)
    if not 200 <= status < 300:
        said = describe_outcome(parsed) or "no OperationOutcome"
        raise PermanentDeliveryError(_cut(f"{where} refused (HTTP {status}): {said}"))
    if not isinstance(parsed, Mapping) or parsed.get("resourceType") != "Bundle":
        raise TransientDeliveryError(f"{where} answered HTTP {status} without a response Bundle")
    entries = [e for e in parsed.get("entry") or () if isinstance(e, Mapping)]
    if len(entries) != len(labels):
        raise PermanentDeliveryError(
            f"{where} answered {len(entries)} entries for {len(labels)} sent"
        )
    created: list[str] = []
    failed: list[str] = []
    for label, entry in zip(labels, entries, strict=True):
        raw = entry.get("response")
        response: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        code = _status_code(str(response.get("status", "")))
        if 200 <= code < 300:
            location = str(response.get("location") or "")
            created.append(location.split("/_history", 1)[0] if location else "?")
        else:
            said = describe_outcome(response.get("outcome")) or "no OperationOutcome"
            failed.append(f"{label}: {response.get('status', '?')}: {said}")
    if failed:
        raise PermanentDeliveryError(
            _cut(f"{where}: {len(failed)} of {len(labels)} entries failed: " + " | ".join(failed))
        )
    return DeliveryResult(detail=_cut(f"HTTP {status}: " + " ".join(created)), response=body)


def _status_code(text: str) -> int:
    head = text.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
