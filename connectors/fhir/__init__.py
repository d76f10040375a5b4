"""The FHIR R4 destination (``type: fhir``): SCAD home telemonitoring, any FHIR server.

Touches: nothing itself; importing it registers the destination and its check.

config (routes.yaml model) -> transaction (the Bundle sent) -> destination (httpx,
auth) -> outcome (the answer judged). :mod:`connectors.fhir.registration` registers the
type with the config model only: the engine imports the destination (httpx) when it builds
one, and ``eai check`` of a routes.yaml naming ``type: fhir`` never does.
"""

from connectors.fhir import check, registration

__all__ = ["check", "registration"]
