"""CI-SIS business acknowledgements: the ZAM^Z01/Z02/Z03 messages sent back to the
establishment after a DMP publication or an MSSanté delivery / read receipt.

Touches: nothing.

:func:`build_zam` builds one from the source message (HL7 2.6, shaped like the ANS
samples); :func:`zam_follow_up` makes it the :class:`eai.messages.FollowUp` a destination
returns (to the route's ``business_acks`` destination, only when the message asked for
it); the ERR-5 code tables of the IG are data (:data:`SMTP_ERROR_CODES`...). See
docs/business-acks.md.
"""

from eai.business_ack._codes import (
    ACK_METIER_ZAM,
    ACK_METIER_ZAM_SYSTEM,
    APPLICATION_ERROR_CONDITIONS,
    APPLICATION_ERROR_SYSTEM,
    DMP_ERROR_SYSTEM,
    MESSAGE_ERROR_CONDITIONS,
    MESSAGE_ERROR_SYSTEM,
    SMTP_ERROR_CODES,
    SMTP_ERROR_SYSTEM,
    YES_NO_SYSTEM,
)
from eai.business_ack._zam import (
    ZAM_EVENTS,
    Zam,
    ZamError,
    ZamEvent,
    application_error,
    asks_for,
    build_zam,
    dmp_error,
    new_control_id,
    smtp_error,
    unexplained_error,
    zam_follow_up,
)

__all__ = [
    "ACK_METIER_ZAM",
    "ACK_METIER_ZAM_SYSTEM",
    "APPLICATION_ERROR_CONDITIONS",
    "APPLICATION_ERROR_SYSTEM",
    "DMP_ERROR_SYSTEM",
    "MESSAGE_ERROR_CONDITIONS",
    "MESSAGE_ERROR_SYSTEM",
    "SMTP_ERROR_CODES",
    "SMTP_ERROR_SYSTEM",
    "YES_NO_SYSTEM",
    "ZAM_EVENTS",
    "Zam",
    "ZamError",
    "ZamEvent",
    "application_error",
    "asks_for",
    "build_zam",
    "dmp_error",
    "new_control_id",
    "smtp_error",
    "unexplained_error",
    "zam_follow_up",
]
