"""What a delivery mails through MSSanté, as data: the recipients and the XDS metadata of
its IHE XDM attachment, never the document.

Touches: nothing.

For the console's view of a delivery (:attr:`eai.registry.DestinationSpec.preview`): the
submission set and document entry are built by :func:`eai.xds.build_metadata` from the
same publication a send reads (:func:`connectors.mssante._source.mail_source`), so the
view shows what the ``METADATA.XML`` of the zip would hold (its times are those of the
view). The caller records the read first: the patient's traits are in the entry. What a
send would refuse is given as ``dead``, the reason the delivery would be dead-lettered.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from connectors.mssante._source import mail_source
from connectors.mssante.config import MssanteDestinationConfig
from eai.errors import PermanentDeliveryError
from eai.messages import OutboxItem
from eai.xds import build_metadata

__all__ = ["preview"]


def preview(
    config: MssanteDestinationConfig, item: OutboxItem, recipients: list[str]
) -> dict[str, Any]:
    """The mailboxes ``item`` is meant for (as the destination computes them) and its XDM
    metadata, JSON-ready."""
    data: dict[str, Any] = {
        "destination": config.name,
        "transaction": "MSSanté mail over SMTP, IHE XDM attachment (METADATA.XML)",
        "recipients": recipients,
    }
    try:
        source = mail_source(item)
        submission, entry = build_metadata(source.publication, config.metadata_settings())
    except PermanentDeliveryError as exc:
        data["dead"] = str(exc)
        return data
    data["submissionSet"] = asdict(submission)
    data["documentEntry"] = asdict(entry)
    return data
