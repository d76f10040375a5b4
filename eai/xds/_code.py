"""A coded value of a terminology (the CI-SIS code systems, LOINC...).

Touches: nothing.

Apart from the CDA header reader (:mod:`eai.xds._header`, lxml) so that the code tables
and a destination's settings (:mod:`eai.xds._settings`) load without it: ``eai check``
builds them, it reads no CDA.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Code"]


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value: ``code`` in ``system`` (an OID), with its ``display`` name."""

    code: str
    system: str
    display: str = ""
