"""What one DMP publication is made of: the shared XDS reading plus the DMP's own rules.

Touches: nothing.

:func:`eai.xds.read_publication` reads the outbox item (ORU/MDM or CDA alone); the DMP
adds that it takes a qualified INS only and never publishes a deletion as a new document.
"""

from __future__ import annotations

from eai.errors import PermanentDeliveryError
from eai.messages import OutboxItem
from eai.xds import ACCEPTS, Publication, read_publication

__all__ = ["ACCEPTS", "Publication", "publication_of"]


def publication_of(item: OutboxItem) -> Publication:
    """Read ``item`` into a :class:`Publication`.

    Raises PermanentDeliveryError when the item carries no readable CDA, when its identity
    is not qualified (the DMP takes only a qualified INS) or when the CDA header lacks a
    required element (named)."""
    if not item.facts.ins or not item.facts.ins_oid:
        raise PermanentDeliveryError(
            "no qualified INS for this message: the DMP takes documents of patients with a "
            "qualified identity only"
        )
    if item.facts.flags.get("document_action", "") == "delete":
        # Never publish a deletion as a new document (issue 18: the DMP's deletion
        # transaction is not built yet).
        raise PermanentDeliveryError(
            "document_action delete: the dmp destination does not delete documents yet"
        )
    return read_publication(item)
