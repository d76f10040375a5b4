"""MSSanté (secure health messaging): CI-SIS documents mailed from an application mailbox.

Touches: nothing itself (see :mod:`connectors.mssante.destination`).

- :mod:`connectors.mssante.config`: the destination's config;
- :mod:`connectors.mssante._matrix`: the CI-SIS routing matrix, as data;
- :mod:`connectors.mssante._source`: the document, bodies and PDF read from the item;
- :mod:`connectors.mssante._xdm`: the ``IHE_XDM.zip`` attachment (metadata by :mod:`eai.xds`);
- :mod:`connectors.mssante._mail`: the mails (recipients, X-MSS headers, receipts asked);
- :mod:`connectors.mssante._smtp`: the SMTP submission client (TLS, per-recipient outcome);
- :mod:`connectors.mssante.destination`: the registered destination ``mssante``.
"""

from connectors.mssante._mail import PATIENT_DOMAIN, Mail, build_mails, message_id
from connectors.mssante._matrix import FLAGS, MATRIX, RULE, Audience, Row, audience
from connectors.mssante._smtp import Refusal, SmtpClient, Submission
from connectors.mssante._source import MailSource, mail_source
from connectors.mssante._xdm import DOCUMENT, METADATA, Xdm, build_xdm

__all__ = [
    "DOCUMENT",
    "FLAGS",
    "MATRIX",
    "METADATA",
    "PATIENT_DOMAIN",
    "RULE",
    "Audience",
    "Mail",
    "MailSource",
    "Refusal",
    "Row",
    "SmtpClient",
    "Submission",
    "Xdm",
    "audience",
    "build_mails",
    "build_xdm",
    "mail_source",
    "message_id",
]
