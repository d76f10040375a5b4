"""Registers the destination type ``fhir`` with its config model, without httpx.

Touches: nothing (the factory imports :mod:`connectors.fhir.destination` when the engine
builds a destination; ``eai check`` validates the settings with this module only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.fhir.config import FhirDestinationConfig
from eai.messages import MEDIA_FHIR_JSON
from eai.registry import DestinationSpec, register_destination

if TYPE_CHECKING:
    from connectors.fhir.destination import FhirDestination

__all__: list[str] = []


def _factory(config: FhirDestinationConfig) -> FhirDestination:
    from connectors.fhir.destination import FhirDestination

    return FhirDestination(config)


register_destination(
    DestinationSpec(
        type_name="fhir",
        config_model=FhirDestinationConfig,
        factory=_factory,
        summary="FHIR R4 server (SCAD...): the route's mapped Bundle as a transaction, "
        "Patient created once by INS; OAuth2 or mutual TLS",
        accepts=(MEDIA_FHIR_JSON,),
    )
)
