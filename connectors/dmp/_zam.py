"""The DMP's business acknowledgement: a ZAM^Z01 for every final outcome of a publication.

Touches: nothing.

IG "Transmission de documents CDA en HL7 v2" (``profils-messages.md``, ZAM^Z01): when the
message asked for it (MetaDMPMSS ``ACK_RECEPTION`` = Y) and its route names a return
destination (``business_acks``), the outcome carries a ZAM^Z01 to it as a follow-up
(:mod:`eai.business_ack`): ``Y`` when published; ``N`` when dead-lettered, its ERR-5 the
first RegistryError (``errorCode^codeContext^DMPERRORCODE``) or, when the DMP gave no
error code (a SOAP fault, an HTTP status, a document the metadata cannot be made of, the
retries given up), the reason in ERR-8. The worker sends the ``N`` of a transient error
only if it gives up on the delivery.
"""

from __future__ import annotations

import logging

from connectors.dmp._response import RegistryFailure
from eai.business_ack import ZamError, dmp_error, unexplained_error, zam_follow_up
from eai.errors import DeliveryError, InputError
from eai.messages import FollowUp, OutboxItem

__all__ = ["business_ack"]

log = logging.getLogger(__name__)


def _error(failure: DeliveryError) -> ZamError:
    if isinstance(failure, RegistryFailure) and failure.errors:
        code, context = failure.errors[0]
        return dmp_error(code, context)
    return unexplained_error(str(failure))


def business_ack(item: OutboxItem, failure: DeliveryError | None = None) -> tuple[FollowUp, ...]:
    """The ZAM^Z01 of ``item``'s outcome (published when ``failure`` is None), or nothing
    when the message did not ask for one or has no return destination."""
    try:
        made = zam_follow_up(
            item, "Z01", failure is None, error=None if failure is None else _error(failure)
        )
    except InputError as exc:  # the journaled message no longer reads as HL7 v2: say so
        log.warning("delivery %s: no ZAM^Z01 (%s)", item.delivery_id, exc)
        return ()
    return () if made is None else (made,)
