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

__all__ = ["ROUTES", "FhirSink", "FhirSinkConfig"]


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

ROUTES = """
engine:
  data_dir: {tmp}/var
  database: sqlite:///{tmp}/var/eai.db
listeners:
  - {{name: in, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: {port}}}
  - {{name: fhir, type: fhir-sink}}
routes:
  - {{name: adt-to-dcc, from: [in], to: [dcc]}}
  - {{name: adt-to-fhir, from: [in], to: [fhir], map: auto}}
"""
"""A routes.yaml (``.format(tmp=, port=)``): the test-feed MLLP listener ``in``, each message
to the MLLP peer on ``port`` as received and to this sink mapped (``map: auto``)."""
