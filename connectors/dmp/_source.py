"""What one DMP publication is made of: the shared XDS reading plus the DMP's own rules.

Touches: nothing.

:func:`eai.xds.read_publication` reads the outbox item (ORU/MDM or CDA alone); the DMP
adds that it takes a qualified INS only.
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
    return read_publication(item)
