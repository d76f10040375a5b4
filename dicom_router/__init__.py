"""DICOM routing for the e-m@ge imaging network: SCP, spool, coercion, C-STORE out.

Touches: network, files (through the modules below; importing registers them).

- :mod:`dicom_router.scp`: Storage SCP, listener type ``dicom`` (spool, journal, then success);
- :mod:`dicom_router.spool`: durable, encrypted spool files under router-made names,
  quarantine, quota;
- :mod:`dicom_router.content`: content type ``dicom`` (what routes see of an instance);
- :mod:`dicom_router.listing`: its Study, Series and SOP Instance UIDs in ``eai messages``;
- :mod:`dicom_router.coercion`: a route's marking operations on the forwarded copy;
- :mod:`dicom_router.forward`: C-STORE SCU, destination type ``dicom``;
- :mod:`dicom_router.retention`: removes delivered instances from the spool (engine job);
- :mod:`dicom_router.config`: the DICOM pieces of ``routes.yaml`` (tags, ``coerce``);
- :mod:`dicom_router.routing`: the ``when`` keys ``tag`` and ``calling_ae``, the route
  key ``coerce`` and its ``eai check``;
- :mod:`dicom_router.client`: ``eai dicom echo`` / ``eai dicom send``;
- :mod:`dicom_router.cli`: the ``eai dicom`` commands (registered, loaded when used).
"""

from dicom_router import listing as _listing  # noqa: F401 - registers its listing fields
from dicom_router import routing as _routing  # noqa: F401  - registers tag, calling_ae, coerce
from dicom_router.coercion import apply_coercion
from dicom_router.config import is_uid
from dicom_router.content import DicomInstance, parse_dicom
from dicom_router.forward import DicomDestination, DicomDestinationConfig, store_verdict
from dicom_router.reference import InstanceRef
from dicom_router.retention import RetentionReport, retention_pass
from dicom_router.scp import AllowedCaller, DicomListener, DicomListenerConfig
from dicom_router.spool import Spool, SpooledFile

__all__ = [
    "AllowedCaller",
    "DicomDestination",
    "DicomDestinationConfig",
    "DicomInstance",
    "DicomListener",
    "DicomListenerConfig",
    "InstanceRef",
    "RetentionReport",
    "Spool",
    "SpooledFile",
    "apply_coercion",
    "is_uid",
    "parse_dicom",
    "retention_pass",
    "store_verdict",
]
