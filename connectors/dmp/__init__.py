"""DMP publication (IHE XDS.b ITI-41 with CI-SIS metadata): metadata built from the CDA header.

Touches: nothing (the metadata is built by :mod:`eai.xds`, shared with the MSSanté XDM
attachment; the transport is :mod:`connectors.dmp.destination`).

- :mod:`connectors.dmp.registration`: the ``dmp`` type and its config model
  (:mod:`connectors.dmp.config`), all ``eai check`` loads;
- :mod:`connectors.dmp._source`: an outbox item read into a :class:`Publication` by
  :func:`eai.xds.read_publication`, with the DMP's own rules (a qualified INS only, no
  deletion);
- :mod:`eai.xds`: the CDA header values, the submission set and document entry, their
  ebRIM rendering (the ``ProvideAndRegisterDocumentSetRequest``).

The names below load when first asked for (PEP 562), so that importing the registration
module (which imports this package first) reads no CDA code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_FROM_SOURCE = frozenset({"ACCEPTS", "Publication", "publication_of"})


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'connectors.dmp' has no attribute {name!r}")
    module = "connectors.dmp._source" if name in _FROM_SOURCE else "eai.xds"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
