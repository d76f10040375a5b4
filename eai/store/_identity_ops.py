"""The pipeline's identity writes (reconciliation found, A40 merge, A47 id change) applied.

Touches: DB (inside the caller's transaction, on the writer thread).

Each write may change the ordering key of the local ids it involves: their deliveries
not yet delivered follow the new key, so a merged patient's messages wait behind the
surviving identity's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, and_, update

from eai.store._crypto import Cipher
from eai.store._schema import ACTIVE_DELIVERY, deliveries
from eai.store._xref import ordering_key_of_hash, record_xref, redirect

__all__ = ["IdentityOp", "XrefRecord", "XrefRedirect", "apply_identity_op"]


@dataclass(frozen=True, slots=True)
class XrefRecord:
    """Reconciliation found the regional identity of a facility's local id."""

    facility: str
    local_id: str
    regional_id: str
    ins: str = ""
    ins_oid: str = ""

    def __repr__(self) -> str:  # never show identifiers in logs or tracebacks
        return f"XrefRecord(facility={self.facility!r})"


@dataclass(frozen=True, slots=True)
class XrefRedirect:
    """The establishment merged (A40: ``from_id`` = MRG-1, ``to_id`` = PID-3) or renamed
    (A47: ``from_id`` = MRG-1 old id, ``to_id`` = PID-3 new id) a local id."""

    kind: Literal["A40", "A47"]
    facility: str
    from_id: str
    to_id: str

    def __repr__(self) -> str:
        return f"XrefRedirect({self.kind}, facility={self.facility!r})"


IdentityOp = XrefRecord | XrefRedirect

_WAITING_STATUSES = (*ACTIVE_DELIVERY, "held")
"""Not delivered yet and not given up on: pending, waiting for a retry, or held."""


def _rekey(conn: Connection, old: str, new: str) -> int:
    """Moves the not-yet-delivered deliveries of ordering key ``old`` to ``new``: their ids
    keep them in arrival order within the merged chain."""
    result = conn.execute(
        update(deliveries)
        .where(and_(deliveries.c.patient_key == old, deliveries.c.status.in_(_WAITING_STATUSES)))
        .values(patient_key=new)
    )
    return int(result.rowcount or 0)


def apply_identity_op(conn: Connection, cipher: Cipher, op: IdentityOp, now: datetime) -> int:
    """Writes ``op`` and re-keys the waiting deliveries of every local id whose ordering key
    it changed (so a merged patient's messages wait behind the surviving identity's).
    Returns how many deliveries were re-keyed."""
    if isinstance(op, XrefRecord):
        involved = [op.local_id]
    else:
        involved = [op.from_id, op.to_id]
    hashes = [cipher.hash_id(i) for i in involved if i.strip()]
    before = {h: ordering_key_of_hash(conn, cipher, op.facility, h) for h in hashes}
    if isinstance(op, XrefRecord):
        record_xref(
            conn, cipher, op.facility, op.local_id, op.regional_id, op.ins, now, ins_oid=op.ins_oid
        )
    elif op.from_id.strip() and op.to_id.strip():
        redirect(
            conn, cipher, op.facility, kind=op.kind, from_id=op.from_id, to_id=op.to_id, now=now
        )
    moved = 0
    for h, old in before.items():
        new = ordering_key_of_hash(conn, cipher, op.facility, h)
        if new != old:
            moved += _rekey(conn, old, new)
    return moved
