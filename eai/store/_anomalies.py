"""Anomalies reported to establishments: recording, listing, and what a digest sends.

Touches: DB.

Most are identity anomalies (the regional charter, the identity server); one is the
journal's own: a control id reused with another content (:func:`control_id_reused`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, select, update

from eai.store._schema import anomalies
from identity.notify import DigestLine

__all__ = [
    "CONTROL_ID_REUSED",
    "AnomalyRow",
    "control_id_reused",
    "list_anomalies",
    "mark_notified",
    "new_anomalies",
    "pending_for_notification",
    "record_anomalies",
]


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    id: int
    at: datetime
    facility: str
    message_id: int | None
    control_id: str
    rule: str
    severity: str
    explanation: str
    notified_at: datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.replace(tzinfo=UTC).isoformat(),
            "facility": self.facility,
            "message_id": self.message_id,
            "control_id": self.control_id,
            "rule": self.rule,
            "severity": self.severity,
            "explanation": self.explanation,
            "notified": self.notified_at is not None,
        }


def record_anomalies(
    conn: Connection,
    rows: Sequence[tuple[str, int | None, str, str, str, str]],
    now: datetime,
) -> None:
    """``rows``: (facility, message_id, control_id, rule, severity, explanation)."""
    if rows:
        conn.execute(
            insert(anomalies),
            [
                {
                    "at": now,
                    "facility": f,
                    "message_id": m,
                    "control_id": c,
                    "rule": r,
                    "severity": s,
                    "explanation": e,
                }
                for f, m, c, r, s, e in rows
            ],
        )


def new_anomalies(conn: Connection, rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The anomaly rows (``identity_anomalies`` columns) not yet recorded for their message:
    one per (message id, rule). A message planned again (``eai replay``, held deliveries
    settled after the identity server answered) finds the same anomalies; recorded once,
    its establishment is mailed once."""
    ids = {r["message_id"] for r in rows if r["message_id"] is not None}
    seen: set[tuple[object, object]] = set()
    if ids:
        q = select(anomalies.c.message_id, anomalies.c.rule).where(anomalies.c.message_id.in_(ids))
        seen = {(m, r) for m, r in conn.execute(q)}
    fresh: list[dict[str, object]] = []
    for row in rows:
        key = (row["message_id"], row["rule"])
        if row["message_id"] is None or key not in seen:
            seen.add(key)
            fresh.append(row)
    return fresh


CONTROL_ID_REUSED = "MSH10-REUTILISE"
"""The rule of a message whose control id its sender had already used for another content."""

_REUSED_TEXT = (
    "L'identifiant de message (MSH-10) a déjà été envoyé par la même application (MSH-3) "
    "pour un message au contenu différent (message {earlier} de la plateforme). Le nouveau "
    "message a été accepté et traité comme un message distinct ; vérifiez le compteur "
    "d'identifiants de votre interface (remis à zéro après un redémarrage ou une "
    "restauration ?) : chaque message doit avoir son propre MSH-10, sans quoi une "
    "retransmission ne peut plus être distinguée d'un nouveau message."
)


def control_id_reused(
    facility: str, message_id: int, control_id: str, earlier: int
) -> tuple[str, int | None, str, str, str, str]:
    """The ``warn`` anomaly row (for :func:`record_anomalies`) of message ``message_id``,
    which reuses the control id of message ``earlier`` with another content."""
    return (
        facility,
        message_id,
        control_id,
        CONTROL_ID_REUSED,
        "warn",
        _REUSED_TEXT.format(earlier=earlier),
    )


def _row(r: object) -> AnomalyRow:
    return AnomalyRow(*(getattr(r, c.name) for c in anomalies.c))


def list_anomalies(
    engine: Engine,
    *,
    facility: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[AnomalyRow]:
    q = select(anomalies).order_by(anomalies.c.id.desc()).limit(limit)
    if facility:
        q = q.where(anomalies.c.facility == facility)
    if since:
        q = q.where(anomalies.c.at >= since)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q)]


def pending_for_notification(
    conn: Connection, *, severities: Sequence[str]
) -> dict[str, tuple[list[int], list[DigestLine]]]:
    """Per facility: the anomaly ids not yet mailed, grouped by rule."""
    rows = conn.execute(
        select(anomalies)
        .where(anomalies.c.notified_at.is_(None), anomalies.c.severity.in_(list(severities)))
        .order_by(anomalies.c.id)
    ).all()
    per: dict[str, dict[str, list[AnomalyRow]]] = {}
    for r in rows:
        row = _row(r)
        per.setdefault(row.facility, {}).setdefault(row.rule, []).append(row)
    out: dict[str, tuple[list[int], list[DigestLine]]] = {}
    for facility, by_rule in per.items():
        ids = [a.id for rs in by_rule.values() for a in rs]
        lines = [
            DigestLine(
                rule,
                rs[0].severity,
                rs[0].explanation,
                len({a.message_id for a in rs}),
                tuple(dict.fromkeys(a.control_id for a in rs if a.control_id)),
            )
            for rule, rs in sorted(by_rule.items())
        ]
        out[facility] = (ids, lines)
    return out


def mark_notified(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    if ids:
        conn.execute(update(anomalies).where(anomalies.c.id.in_(list(ids))).values(notified_at=now))
