"""Registers the ``dicom`` listener and destination types, the DICOM ``when`` keys, the
route key ``coerce`` and the listing fields, without loading a DICOM library.

Touches: nothing (the factories import :mod:`dicom_router.scp` and
:mod:`dicom_router.forward`, and with them pydicom and pynetdicom, when the engine builds
a listener or a destination): ``eai check`` of a DICOM routes.yaml imports this module
only (:data:`eai.plugins.TYPES`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicom_router import listing as _listing  # noqa: F401 - registers its listing fields
from dicom_router import routing as _routing  # noqa: F401 - registers tag, calling_ae, coerce
from dicom_router._dest_config import DicomDestinationConfig
from dicom_router._scp_config import DicomListenerConfig
from eai.messages import MEDIA_DICOM_REF
from eai.registry import (
    DestinationSpec,
    Ingest,
    ListenerSpec,
    register_destination,
    register_listener,
)

if TYPE_CHECKING:
    from dicom_router.forward import DicomDestination
    from dicom_router.scp import DicomListener

__all__: list[str] = []


def _listener(config: DicomListenerConfig, ingest: Ingest) -> DicomListener:
    from dicom_router.scp import DicomListener

    return DicomListener(config, ingest)


def _destination(config: DicomDestinationConfig) -> DicomDestination:
    from dicom_router.forward import DicomDestination

    return DicomDestination(config)


register_listener(
    ListenerSpec(
        type_name="dicom",
        config_model=DicomListenerConfig,
        factory=_listener,
        summary="DICOM Storage SCP (C-STORE, C-ECHO; optional TLS): spool, journal, then success",
        produces=(MEDIA_DICOM_REF,),
    )
)
register_destination(
    DestinationSpec(
        type_name="dicom",
        config_model=DicomDestinationConfig,
        factory=_destination,
        summary="DICOM C-STORE to a Storage SCP (optional TLS): as received, or marked per route",
        accepts=(MEDIA_DICOM_REF,),
        reads_facts=False,  # it sends the payload as it is
    )
)
