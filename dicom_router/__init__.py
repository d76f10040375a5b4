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
- :mod:`dicom_router.cli`: the ``eai dicom`` commands (registered, loaded when used);
- :mod:`dicom_router.registration`: registers the types, ``when`` keys and listing fields
  without loading pydicom or pynetdicom (what ``eai check`` imports);
- :mod:`dicom_router.plugin`: everything the engine needs registered (the module of
  :data:`eai.plugins.BUILTIN`).

Importing the package loads nothing heavy: the names below are imported from their module
on first use (PEP 562), so that ``eai check`` of a DICOM routes.yaml costs no DICOM library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dicom_router.coercion import apply_coercion
    from dicom_router.config import is_uid
    from dicom_router.content import DicomInstance, parse_dicom
    from dicom_router.forward import DicomDestination, DicomDestinationConfig, store_verdict
    from dicom_router.reference import InstanceRef
    from dicom_router.retention import RetentionReport, retention_pass
    from dicom_router.scp import AllowedCaller, DicomListener, DicomListenerConfig
    from dicom_router.spool import Spool, SpooledFile

_WHERE = {
    "AllowedCaller": "scp",
    "DicomDestination": "forward",
    "DicomDestinationConfig": "forward",
    "DicomInstance": "content",
    "DicomListener": "scp",
    "DicomListenerConfig": "scp",
    "InstanceRef": "reference",
    "RetentionReport": "retention",
    "Spool": "spool",
    "SpooledFile": "spool",
    "apply_coercion": "coercion",
    "is_uid": "config",
    "parse_dicom": "content",
    "retention_pass": "retention",
    "store_verdict": "forward",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dicom_router' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dicom_router.{module}"), name)


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
