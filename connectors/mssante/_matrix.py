"""The CI-SIS MSSanté routing matrix: who may receive a document, from its MetaDMPMSS flags.

Touches: nothing.

IG ``ansforge/IG-hl7v2-volet-transmission-document-cda-r2``, page
``regles-gestion-mssante.md`` ("Règles de gestion MSSanté"): "Le tableau présente une liste
exhaustive des combinaisons possibles des OBX pour l'échange MSSANTE. Les cas non
représentés génèrent un message d'erreur." The table is kept here as data, one
:class:`Row` per line of the IG, each flag with the values it allows; a combination that
matches no row is refused with the rule named, never guessed. A flag the message does not
carry reads ``N`` (the flags are Y/N, ``N`` their default in the profile); any other value
(``invalid``) matches no row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eai.errors import PermanentDeliveryError

__all__ = ["FLAGS", "MATRIX", "RULE", "Audience", "Row", "audience"]

RULE = "CI-SIS regles-gestion-mssante"
"""The rule a refused combination names."""

FLAGS = (
    "MASQUE_PS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX",
    "CONNEXION_SECRETE",
    "MODIF_CONF_CODE",
    "DESTDMP",
    "DESTMSSANTEPS",
    "DESTMSSANTEPAT",
    "ACK_RECEPTION",
    "ACK_LECTURE_MSS",
)
"""The MetaDMPMSS flags the matrix reads, in the profile's OBX order."""

_N, _Y, _ANY = frozenset("N"), frozenset("Y"), frozenset("NY")


@dataclass(frozen=True, slots=True)
class Audience:
    """Who receives the document: the professionals (PRT RCT), the patient's mailbox."""

    professionals: bool
    patient: bool


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the IG's table: the values each flag may take, and who receives."""

    name: str
    allowed: Mapping[str, frozenset[str]]
    audience: Audience

    def matches(self, flags: Mapping[str, str]) -> bool:
        return all(flags.get(flag, "N") in self.allowed[flag] for flag in FLAGS)


def _row(name: str, audience: Audience, **allowed: frozenset[str]) -> Row:
    assert set(allowed) == set(FLAGS), name  # every flag stated, as in the IG's table
    return Row(name, allowed, audience)


MATRIX: tuple[Row, ...] = (
    _row(
        "row 1: PS and patient",
        Audience(professionals=True, patient=True),
        MASQUE_PS=_N,
        INVISIBLE_PATIENT=_N,
        INVISIBLE_REP_LEGAUX=_N,
        CONNEXION_SECRETE=_N,
        MODIF_CONF_CODE=_ANY,
        DESTDMP=_ANY,
        DESTMSSANTEPS=_Y,
        DESTMSSANTEPAT=_Y,
        ACK_RECEPTION=_ANY,
        ACK_LECTURE_MSS=_ANY,
    ),
    _row(
        "row 2: PS only, document invisible to the patient",
        Audience(professionals=True, patient=False),
        MASQUE_PS=_N,
        INVISIBLE_PATIENT=_Y,
        INVISIBLE_REP_LEGAUX=_N,
        CONNEXION_SECRETE=_N,
        MODIF_CONF_CODE=_ANY,
        DESTDMP=_ANY,
        DESTMSSANTEPS=_Y,
        DESTMSSANTEPAT=_N,
        ACK_RECEPTION=_ANY,
        ACK_LECTURE_MSS=_ANY,
    ),
    _row(
        "row 3: patient only, not to the DMP",
        Audience(professionals=False, patient=True),
        MASQUE_PS=_ANY,
        INVISIBLE_PATIENT=_N,
        INVISIBLE_REP_LEGAUX=_ANY,
        CONNEXION_SECRETE=_N,
        MODIF_CONF_CODE=_ANY,
        DESTDMP=_N,
        DESTMSSANTEPS=_N,
        DESTMSSANTEPAT=_Y,
        ACK_RECEPTION=_ANY,
        ACK_LECTURE_MSS=_ANY,
    ),
)
"""The IG's table, in its order."""


def audience(flags: Mapping[str, str]) -> Audience:
    """Who receives the document with these flags (the first row that matches).

    Raises PermanentDeliveryError naming the rule and the combination (flags only: no
    patient data) when no row matches."""
    for row in MATRIX:
        if row.matches(flags):
            return row.audience
    said = ", ".join(f"{flag}={flags.get(flag, 'N')}" for flag in FLAGS)
    raise PermanentDeliveryError(
        f"{RULE}: the combination {said} is not in the MSSanté routing matrix (the IG lists "
        "every allowed one; any other is refused)"
    )
