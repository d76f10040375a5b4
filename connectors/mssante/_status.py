"""The SMTPERRORCODE of a failed recipient, read from its delivery status notification.

Touches: nothing.

A ZAM^Z02 ``N`` carries in ERR-5 a code of the IG's ``SMTPERRORCODE`` table
(``error-codes.md``: SMTP reply codes, plus a few codes those lists derive from RFC 3463
enhanced status codes: 510, 512, 513, 523, 541). A DSN gives the remote server's reply in
``Diagnostic-Code: smtp; 550 5.1.1 ...`` when an SMTP server refused, and always an
enhanced ``Status`` (RFC 3464 2.3.4); a local bounce (Postfix: ``X-Postfix; unknown
user``) gives only the latter. So: the reply code of an ``smtp`` diagnostic; else the
enhanced status through :data:`ENHANCED` (as data); else by class (5: 554, 4: 451).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

__all__ = ["ENHANCED", "smtp_code"]

ENHANCED: Final = MappingProxyType(
    {
        "5.1.0": "510",  # other address status: "mauvaise adresse courriel"
        "5.1.1": "550",  # bad destination mailbox address: mailbox not found
        "5.1.2": "512",  # bad destination system address: the domain's host not found
        "5.1.3": "513",  # bad destination mailbox address syntax
        "5.1.6": "550",  # destination mailbox has moved
        "5.2.1": "550",  # mailbox disabled
        "5.2.2": "552",  # mailbox full
        "5.2.3": "523",  # message length exceeds administrative limit
        "5.3.4": "552",  # message too big for system
        "5.4.4": "512",  # unable to route (no host for the domain)
        "5.7.1": "541",  # delivery not authorized, message refused
        "4.2.2": "422",  # mailbox full (temporary)
        "4.3.1": "431",  # mail system full
        "4.4.1": "441",  # no answer from host
        "4.4.2": "442",  # bad connection
        "4.4.7": "420",  # delivery time expired
    }
)
"""RFC 3463 enhanced status -> SMTPERRORCODE, when the DSN gives no SMTP reply."""

_REPLY = re.compile(r"\s*smtp\s*;\s*([2-5]\d\d)\b", re.IGNORECASE)
_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")


def smtp_code(status: str, diagnostic: str) -> str:
    """The SMTPERRORCODE of a failed recipient (``Status``, ``Diagnostic-Code``)."""
    reply = _REPLY.match(diagnostic)
    if reply:
        return reply.group(1)
    found = _STATUS.search(status)
    if found is None:
        return "554"
    return ENHANCED.get(found.group(0), "554" if found.group(1) == "5" else "451")
