"""The registry of content types the pipeline can read (HL7 v2, CDA, DICOM, ...).

Touches: nothing.

A listener journals raw bytes with a ``content_type``; the pipeline asks this
registry for the parser of that type. A parser turns the bytes into a
:class:`ParsedContent`: something routes can test (``header`` + ``get(path)``),
the patient's identifiers and ordering key, and routing facts. A new kind of
content is one module that calls :func:`register_content_type`, plus its tests.

A registry below the pipeline and :mod:`mappings` (which reads payloads with it for
``map: auto``): it names the config and routing types only under ``TYPE_CHECKING``, and
loads the core's HL7 v2 parser and the bundled plugins by name, as :mod:`eai.plugins` does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eai import plugins
from eai.messages import Recipient
from identity import PatientKey
from identity.patient import PatientIdentity

if TYPE_CHECKING:
    from eai.config import ListenerConfig, Route
    from eai.routing import Routable

__all__ = [
    "ContentParser",
    "ParsedContent",
    "content_parser",
    "content_types",
    "media_type_of",
    "register_content_type",
]


@dataclass(frozen=True, slots=True)
class ParsedContent:
    """What the pipeline needs from a journaled payload (never logged)."""

    routable: Routable
    patient: PatientKey
    control_id: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)
    """Routing facts a route may test (e.g. CI-SIS MetaDMPMSS flags)."""
    for_route: Callable[[Route], bytes | None] | None = None
    """The payload of a delivery made by ``route`` when it differs from the message's
    (DICOM: the reference plus the route's ``coerce`` operations); None = as received."""
    warnings: tuple[str, ...] = ()
    """What the parser repaired to read the payload (e.g. an embedded document's base64
    without padding), no patient data: each becomes a ``warning`` event of its journey."""
    problem: str = ""
    """Why a part the routes rely on was refused (e.g. the embedded document), no patient
    data: no route reading a fact takes the message; rejected when no other route does."""
    document_patient: PatientIdentity | None = None
    recipients: tuple[Recipient, ...] = ()
    """The participants the message names for its delivery (CI-SIS PRT), read once here
    for the destinations (:class:`eai.messages.MessageFacts`); patient data."""
    """The patient the embedded document names (the recordTarget of the CDA a CI-SIS
    ORU/MDM carries): the identity charter checks it is the message's own."""

    def __repr__(self) -> str:
        return f"ParsedContent(control_id={self.control_id!r}, facts={sorted(self.facts)})"


ContentParser = Callable[[bytes, "ListenerConfig | None"], ParsedContent]
"""Parses a payload journaled by the given listener (``None``: listener gone from
the config). Raises :class:`eai.errors.InputError` when it cannot."""

_parsers: dict[str, ContentParser] = {}
_media: dict[str, str] = {}


def register_content_type(name: str, parser: ContentParser, media_type: str = "") -> None:
    """``media_type``: what a delivery of such a message as received carries
    (``eai.messages.MEDIA_*``; "" = ``application/octet-stream``)."""
    if name in _parsers and _parsers[name] is not parser:
        raise ValueError(f"content type {name!r} registered twice")
    _parsers[name] = parser
    _media[name] = media_type or "application/octet-stream"


def media_type_of(name: str) -> str:
    """The media type of a message of content type ``name`` delivered as received."""
    if name not in _media:
        _load_builtin()
    return _media.get(name, "application/octet-stream")


def content_parser(name: str) -> ContentParser | None:
    parser = _parsers.get(name)
    if parser is None:  # the pipeline asks once per message: load only when unknown
        _load_builtin()
        parser = _parsers.get(name)
    return parser


def content_types() -> list[str]:
    _load_builtin()
    return sorted(_parsers)


_CORE = "eai._hl7_content"
"""The core's content module that registers ``hl7v2`` (``cda`` is registered by
:mod:`eai.cda`, imported by the CDA listeners among the plugins)."""


def _load_builtin() -> None:
    if "hl7v2" not in _parsers:
        importlib.import_module(_CORE)
    plugins.load_builtin()
