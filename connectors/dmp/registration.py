"""Registers the destination type ``dmp`` with its config model, without the sending code.

Touches: nothing (the factory imports :mod:`connectors.dmp.destination` when the engine
builds a destination, the preview :mod:`connectors.dmp._preview` when asked; ``eai
check`` validates the settings with this module only: no httpx, no XML signature).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.dmp.config import DmpDestinationConfig
from eai.registry import DestinationSpec, register_destination
from eai.xds import ACCEPTS

if TYPE_CHECKING:
    from connectors.dmp.destination import DmpDestination
    from eai.messages import OutboxItem

__all__: list[str] = []


def _factory(config: DmpDestinationConfig) -> DmpDestination:
    from connectors.dmp.destination import DmpDestination

    return DmpDestination(config)


def _preview(config: DmpDestinationConfig, item: OutboxItem) -> dict[str, Any]:
    """The XDS metadata of ``item`` as ``eai dmp preview --raw`` shows it (the caller has
    recorded the read: the patient's traits are shown)."""
    from connectors.dmp._preview import preview

    return preview(config, item, show_patient=True)


register_destination(
    DestinationSpec(
        type_name="dmp",
        config_model=DmpDestinationConfig,
        factory=_factory,
        summary="DMP: IHE XDS.b ITI-41 (SOAP 1.2 + MTOM, mutual TLS, signed VIHF, CI-SIS "
        "metadata); needs a qualified INS",
        accepts=ACCEPTS,
        preview=_preview,
    )
)
