"""DMP publication (IHE XDS.b ITI-41 with CI-SIS metadata): metadata built from the CDA header.

Touches: nothing (the metadata is built by :mod:`eai.xds`, shared with the MSSanté XDM
attachment; the transport is :mod:`connectors.dmp.destination`).

- :mod:`connectors.dmp._source`: an outbox item read into a :class:`Publication` by
  :func:`eai.xds.read_publication`, with the DMP's own rules (a qualified INS only, no
  deletion);
- :mod:`eai.xds`: the CDA header values, the submission set and document entry, their
  ebRIM rendering (the ``ProvideAndRegisterDocumentSetRequest``).
"""

from connectors.dmp._source import ACCEPTS, Publication, publication_of
from eai.xds import (
    Code,
    DocumentEntry,
    DocumentHeader,
    MetadataSettings,
    SubmissionSet,
    build_metadata,
    build_request,
    read_header,
)

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
