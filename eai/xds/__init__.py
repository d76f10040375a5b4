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
- :mod:`eai.xds._codes`: the XDS scheme UUIDs and the CI-SIS code tables (from the ANS
  correspondence tables, :mod:`eai.xds._ans_tables`);
- :mod:`eai.xds._ebrim`: their ebRIM rendering (ITI-41 request, ITI-57 status update, XDM
  SubmitObjectsRequest).
"""

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
from eai.xds._header import Code, DocumentHeader, InstanceId, Person, read_header, xds_time
from eai.xds._metadata import (
    DocumentEntry,
    MetadataSettings,
    SubmissionSet,
    build_metadata,
    build_submission_set,
    document_entry_uuid,
    entry_uuid,
    signature_entry,
    xcn,
    xon,
)
from eai.xds._source import ACCEPTS, Publication, read_publication

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
