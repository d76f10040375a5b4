"""What a delivery handed its destination (the FHIR Bundle, a transformed message), for a
person: recorded first.

Touches: DB (one short transaction writes the records, then one read).

As :func:`eai.store.read_raw` for the payload as received, and through the same
recording (``_support_actions.record_read``): the ``raw_viewed`` event (on the message
and the delivery) and the ``read-raw`` audit record are committed before anything is
decrypted; if they cannot be written, nothing is returned.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from eai.errors import NotFound
from eai.messages import OutboxItem
from eai.store._audit import AuditActor
from eai.store._crypto import Cipher
from eai.store._follow_ups import delivery_item
from eai.store._schema import deliveries
from eai.store._support_actions import record_read

__all__ = ["read_delivery"]


def read_delivery(
    engine: Engine, cipher: Cipher, delivery_id: int, *, reader: str, via: str, actor: AuditActor
) -> OutboxItem:
    """Delivery ``delivery_id`` as its destination was handed it (payload and facts in
    clear), once its read is recorded; :class:`NotFound` when there is no such delivery."""
    with engine.begin() as conn:
        message_id = conn.execute(
            select(deliveries.c.message_id).where(deliveries.c.id == delivery_id)
        ).scalar()
        if message_id is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        record_read(conn, cipher, actor, message_id, delivery_id, reader=reader, via=via)
    with engine.connect() as conn:
        return delivery_item(conn, cipher, delivery_id)
