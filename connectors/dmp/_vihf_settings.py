"""The destination's part of the VIHF (its structure and software), as its config gives it.

Touches: nothing.

Apart from the VIHF builder (:mod:`connectors.dmp._vihf`, signxml) so that the config
model (:mod:`connectors.dmp.config`) loads without the XML signature library: ``eai
check`` validates the settings, it signs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eai.xds import Code

__all__ = ["VihfSettings"]


@dataclass(frozen=True, slots=True)
class VihfSettings:
    """The destination's part of the VIHF (the structure and its software)."""

    structure_id: str
    """Identifiant_Structure: the structure's national id (e.g. its FINESS, prefixed)."""
    activity_sector: str
    """Secteur_Activite, ``<code>^<OID>`` (e.g. ``SA25^1.2.250.1.71.4.2.4``)."""
    software_name: str
    """LPS_Nom."""
    software_version: str
    """LPS_Version."""
    homologation_id: str
    """LPS_ID_HOMOLOGATION_DMP."""
    software_id: str = ""
    """LPS_ID (optional)."""
    default_role: Code | None = None
    """The role when the author's code is no ``G15_...`` profession (else: refused)."""
    authn_context: str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
    """AuthnContextClassRef (the IG's automate example: unspecified)."""
