"""XDS metadata of a CDA document: read from the CDA header and the message, rendered as ebRIM.

Touches: nothing.

A library below the plugins, shared by the destinations that describe a CI-SIS document
with IHE XDS metadata: the DMP (ITI-41 Provide and Register, ``connectors.dmp``) and
MSSanté (the XDM ``METADATA.XML`` of ``IHE_XDM.zip``, ``connectors.mssante``); plugins
never import each other, so what both need lives here.

- :mod:`eai.xds._source`: an outbox item (CI-SIS ORU/MDM, or a CDA alone) read into a
  :class:`Publication` (exact document bytes, header, PV1-2, PID traits, flags, INS);
- :mod:`eai.xds._header`: the CDA header values the metadata needs, the missing ones
  named in a :class:`eai.errors.PermanentDeliveryError`;
- :mod:`eai.xds._metadata`: the submission set and document entry values;
- :mod:`eai.xds._settings`: a destination's metadata settings and the media types read
  (with :mod:`eai.xds._code`, a coded value: no XML);
- :mod:`eai.xds._codes`: the XDS scheme UUIDs and the CI-SIS code tables (from the ANS
  correspondence tables, :mod:`eai.xds._ans_tables`);
- :mod:`eai.xds._ebrim`: their ebRIM rendering (ITI-41 request, ITI-57 status update, XDM
  SubmitObjectsRequest).

The names load when first asked for (PEP 562): a destination's config model takes its
settings and the code tables (``_settings``, ``_codes``: no XML) without the CDA reader
and the ebRIM writer, so ``eai check`` of a routes.yaml naming one imports neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eai.xds._code import Code
    from eai.xds._codes import (
        CONFIDENTIALITY_FLAGS,
        CONTENT_TYPE_BY_PATIENT_CLASS,
        DEFAULT_CLASS_CODES,
        DEFAULT_FORMAT_CODES,
        FORMAT_BY_MEDIA,
        FORMAT_PDF,
        INS_OIDS,
        RPPS_OID,
        SCHEME,
    )
    from eai.xds._ebrim import (
        APPROVED,
        DELETED,
        LCM,
        RIM,
        RPLC,
        SIGNS,
        SUBMISSION_SET_ID,
        UPDATE_AVAILABILITY_STATUS,
        XDSB,
        build_request,
        build_status_update,
        build_submit_objects,
    )
    from eai.xds._header import DocumentHeader, InstanceId, Person, read_header, xds_time
    from eai.xds._metadata import (
        DocumentEntry,
        SubmissionSet,
        build_metadata,
        build_submission_set,
        document_entry_uuid,
        entry_uuid,
        signature_entry,
        xcn,
        xon,
    )
    from eai.xds._settings import ACCEPTS, MetadataSettings
    from eai.xds._source import Publication, read_publication

__all__ = [
    "ACCEPTS",
    "APPROVED",
    "DELETED",
    "FORMAT_BY_MEDIA",
    "RPLC",
    "SUBMISSION_SET_ID",
    "UPDATE_AVAILABILITY_STATUS",
    "build_status_update",
    "build_submission_set",
    "document_entry_uuid",
    "CONFIDENTIALITY_FLAGS",
    "CONTENT_TYPE_BY_PATIENT_CLASS",
    "DEFAULT_CLASS_CODES",
    "DEFAULT_FORMAT_CODES",
    "FORMAT_PDF",
    "INS_OIDS",
    "LCM",
    "RIM",
    "RPPS_OID",
    "SCHEME",
    "SIGNS",
    "XDSB",
    "Code",
    "DocumentEntry",
    "DocumentHeader",
    "InstanceId",
    "MetadataSettings",
    "Person",
    "Publication",
    "SubmissionSet",
    "build_metadata",
    "build_request",
    "build_submit_objects",
    "entry_uuid",
    "read_header",
    "read_publication",
    "signature_entry",
    "xcn",
    "xds_time",
    "xon",
]

_LAZY: dict[str, str] = {
    "ACCEPTS": "eai.xds._settings",
    "APPROVED": "eai.xds._ebrim",
    "CONFIDENTIALITY_FLAGS": "eai.xds._codes",
    "CONTENT_TYPE_BY_PATIENT_CLASS": "eai.xds._codes",
    "Code": "eai.xds._code",
    "DEFAULT_CLASS_CODES": "eai.xds._codes",
    "DEFAULT_FORMAT_CODES": "eai.xds._codes",
    "DELETED": "eai.xds._ebrim",
    "DocumentEntry": "eai.xds._metadata",
    "DocumentHeader": "eai.xds._header",
    "FORMAT_BY_MEDIA": "eai.xds._codes",
    "FORMAT_PDF": "eai.xds._codes",
    "INS_OIDS": "eai.xds._codes",
    "InstanceId": "eai.xds._header",
    "LCM": "eai.xds._ebrim",
    "MetadataSettings": "eai.xds._settings",
    "Person": "eai.xds._header",
    "Publication": "eai.xds._source",
    "RIM": "eai.xds._ebrim",
    "RPLC": "eai.xds._ebrim",
    "RPPS_OID": "eai.xds._codes",
    "SCHEME": "eai.xds._codes",
    "SIGNS": "eai.xds._ebrim",
    "SUBMISSION_SET_ID": "eai.xds._ebrim",
    "SubmissionSet": "eai.xds._metadata",
    "UPDATE_AVAILABILITY_STATUS": "eai.xds._ebrim",
    "XDSB": "eai.xds._ebrim",
    "build_metadata": "eai.xds._metadata",
    "build_request": "eai.xds._ebrim",
    "build_status_update": "eai.xds._ebrim",
    "build_submission_set": "eai.xds._metadata",
    "build_submit_objects": "eai.xds._ebrim",
    "document_entry_uuid": "eai.xds._metadata",
    "entry_uuid": "eai.xds._metadata",
    "read_header": "eai.xds._header",
    "read_publication": "eai.xds._source",
    "signature_entry": "eai.xds._metadata",
    "xcn": "eai.xds._metadata",
    "xds_time": "eai.xds._header",
    "xon": "eai.xds._metadata",
}
"""Exported name -> its module. A new export goes here, in ``__all__`` and in the
``TYPE_CHECKING`` imports above."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eai.xds' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
