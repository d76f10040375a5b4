"""A test destination that reads the facts, takes any media type and keeps what it is sent.

Touches: nothing.

It stands for a destination that reads ``OutboxItem.facts`` (the DMP, MSSanté, a FHIR
server) without their configuration: the pipeline seals the facts only into the rows of
such destinations (``DestinationSpec.reads_facts``; MLLP and DICOM send the payload as it
is and get none). Importing the module registers the destination type ``facts-sink``.
"""

from __future__ import annotations

from typing import Literal

from eai.config import DestinationConfig
from eai.registry import DestinationSpec, register_destination
from tests._memory_sink import MemorySink

__all__ = ["FactsSink", "FactsSinkConfig"]


class FactsSinkConfig(DestinationConfig):
    """Keeps what it is sent (tests only)."""

    type: Literal["facts-sink"] = "facts-sink"


class FactsSink(MemorySink[FactsSinkConfig]):
    """Keeps what it is sent, in ``items``."""


SPEC: DestinationSpec[FactsSinkConfig] = DestinationSpec(
    type_name="facts-sink",
    config_model=FactsSinkConfig,
    factory=FactsSink,
    summary="tests: reads the facts, keeps what it is sent",
    reads_facts=True,
)
register_destination(SPEC)
