"""A test destination that takes FHIR Bundles (``map:`` routes) and keeps them in memory.

Touches: nothing.

No bundled destination delivers FHIR yet (the FHIR client is a later connector), and
``eai check`` refuses a route handing a Bundle to a destination that does not accept
``application/fhir+json``: the pipeline's mapping tests route to this one. Importing
the module registers the destination type ``fhir-sink``.
"""

from __future__ import annotations

from typing import Literal

from eai.config import DestinationConfig
from eai.messages import MEDIA_FHIR_JSON
from eai.registry import DestinationSpec, register_destination
from tests._memory_sink import MemorySink

__all__ = ["FhirSink", "FhirSinkConfig"]


class FhirSinkConfig(DestinationConfig):
    """Keeps what it is sent (tests only)."""

    type: Literal["fhir-sink"] = "fhir-sink"


class FhirSink(MemorySink[FhirSinkConfig]):
    """Keeps what it is sent, in ``items``."""


SPEC: DestinationSpec[FhirSinkConfig] = DestinationSpec(
    type_name="fhir-sink",
    config_model=FhirSinkConfig,
    factory=FhirSink,
    summary="tests: keeps the FHIR Bundles it is sent",
    accepts=(MEDIA_FHIR_JSON,),
)
register_destination(SPEC)
