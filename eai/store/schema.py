"""The journal's tables, by name: for tests and tooling that inspect rows.

Touches: nothing (re-exports the table declarations of ``eai.store._schema``).

Plugins and the CLI read and write through the functions :mod:`eai.store` exports,
never through these tables: the functions keep the journal's invariants (leases,
events, sealing).
"""

from eai.store._schema import (
    ACTIVE_DELIVERY,
    alert_notices,
    alert_silences,
    alert_state,
    anomalies,
    deliveries,
    destination_state,
    events,
    flow_buckets,
    identity_merges,
    identity_xref,
    messages,
    meta,
    metadata,
    patient_ids,
)

__all__ = [
    "ACTIVE_DELIVERY",
    "alert_notices",
    "alert_silences",
    "alert_state",
    "anomalies",
    "deliveries",
    "destination_state",
    "events",
    "flow_buckets",
    "identity_merges",
    "identity_xref",
    "messages",
    "meta",
    "metadata",
    "patient_ids",
]
