"""DMP publication (IHE XDS.b ITI-41 with CI-SIS metadata): metadata built from the CDA header.

Touches: nothing yet (the metadata modules are pure; the transport comes with the
destination).

- :mod:`connectors.dmp._source`: an outbox item (CI-SIS ORU/MDM, or a CDA alone) read into
  a :class:`Publication` (exact document bytes, header, PV1-2, PID traits, flags, INS);
- :mod:`connectors.dmp._header`: the CDA header values the metadata needs, the missing
  ones named in a :class:`eai.errors.PermanentDeliveryError`;
- :mod:`connectors.dmp._metadata`: the submission set and document entry values;
- :mod:`connectors.dmp._ebrim`: their ebRIM rendering, the ``ProvideAndRegisterDocumentSetRequest``.
"""

from connectors.dmp._ebrim import build_request
from connectors.dmp._header import Code, DocumentHeader, read_header
from connectors.dmp._metadata import DocumentEntry, MetadataSettings, SubmissionSet, build_metadata
from connectors.dmp._source import ACCEPTS, Publication, publication_of

__all__ = [
    "ACCEPTS",
    "Code",
    "DocumentEntry",
    "DocumentHeader",
    "MetadataSettings",
    "Publication",
    "SubmissionSet",
    "build_metadata",
    "build_request",
    "publication_of",
    "read_header",
]
