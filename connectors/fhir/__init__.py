"""The FHIR R4 destination (``type: fhir``): SCAD home telemonitoring, any FHIR server.

Touches: nothing itself; importing it registers the destination and its check.

config (routes.yaml model) -> transaction (the Bundle sent) -> destination (httpx,
auth) -> outcome (the answer judged).
"""

from connectors.fhir import check, destination

__all__ = ["check", "destination"]
