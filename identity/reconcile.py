"""Reconciles the identity a message states with the regional identity server's.

Touches: network (through :class:`identity.pdqm.IdentityServerClient`).

Search by INS first when the message carries one, else (or when the INS is unknown there)
by traits; then compare the RNIV traits sent with the server's (birth name, first given
name, birth date, sex, birth place), normalised with :mod:`identity.traits`; then ask PIXm
for the identifiers the server links to the regional id. Each difference is an anomaly
``(rule, severity, explanation)``, the shape :mod:`eai.identity_gate` uses, with an
explanation in French for the establishment and no trait value (what to fix, not what was
sent).

:class:`identity.pdqm.IdentityServerUnavailable` is NOT caught: the caller holds the
message and retries. A refused request (:class:`identity.pdqm.IdentityServerError`)
becomes the anomaly ``SERVEUR-REQUETE-REFUSEE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from identity.charter import Severity
from identity.patient import PatientIdentity
from identity.pdqm import (
    Identifier,
    IdentityServerClient,
    IdentityServerError,
    ServerPatient,
    TraitsQuery,
)
from identity.traits import normalise_trait

__all__ = [
    "RULES",
    "Outcome",
    "Reconciliation",
    "compare_traits",
    "fhir_birth_date",
    "fhir_gender",
    "reconcile",
]

Outcome = Literal["matched", "mismatch", "unknown", "ambiguous", "skipped", "refused"]

_FIX = (
    " Vérifiez l'identité (pièce d'identité, appel au téléservice INSi), corrigez-la dans "
    "votre gestion administrative des patients puis envoyez une mise à jour (A31/A08) ; en "
    "cas de doute, saisissez votre cellule d'identitovigilance."
)

RULES: Mapping[str, tuple[Severity, str]] = {
    "SERVEUR-NOM-NAISSANCE": (
        "hold",
        "Le nom de naissance (PID-5 de type L, composante 1) diffère de celui que le serveur "
        "régional d'identités connaît pour ce patient." + _FIX,
    ),
    "SERVEUR-PRENOM": (
        "hold",
        "Le premier prénom de naissance (PID-5 de type L, composante 2) diffère de celui du "
        "serveur régional d'identités." + _FIX,
    ),
    "SERVEUR-DATE-NAISSANCE": (
        "hold",
        "La date de naissance (PID-7) diffère de celle du serveur régional d'identités." + _FIX,
    ),
    "SERVEUR-SEXE": (
        "hold",
        "Le sexe (PID-8) diffère de celui du serveur régional d'identités." + _FIX,
    ),
    "SERVEUR-LIEU-NAISSANCE": (
        "hold",
        "Le code INSEE du lieu de naissance (PID-11 de type BDL, composante 9) diffère de "
        "celui du serveur régional d'identités (99xxx pour une naissance à l'étranger)." + _FIX,
    ),
    "SERVEUR-INS": (
        "hold",
        "Le serveur régional d'identités ne connaît pas l'INS transmis (PID-3 de type INS), "
        "mais connaît ce patient, d'après ses traits, avec un autre INS. Rappelez le "
        "téléservice INSi pour récupérer l'INS du patient, mettez-le à jour puis envoyez une "
        "mise à jour (A31/A08).",
    ),
    "SERVEUR-INCONNU": (
        "hold",
        "Le serveur régional d'identités ne connaît aucun patient avec cet INS ni avec ces "
        "traits. Vérifiez l'INS (appel au téléservice INSi) et les traits d'identité transmis "
        "(nom et prénom de naissance, date de naissance, sexe) ; si l'identité est juste, la "
        "plateforme la rapprochera dès que le serveur régional la connaîtra.",
    ),
    "SERVEUR-AMBIGU": (
        "hold",
        "Plusieurs identités du serveur régional correspondent aux traits transmis (doublon "
        "potentiel) : le message ne peut pas être rattaché à l'une d'elles. Transmettez l'INS "
        "(PID-3 de type INS) ou signalez le doublon à la cellule d'identitovigilance.",
    ),
    "SERVEUR-IDENTITE-INACTIVE": (
        "hold",
        "L'identité trouvée sur le serveur régional est désactivée (fusionnée ou supprimée). "
        "Vérifiez auprès de la cellule d'identitovigilance quelle identité utiliser et, si "
        "deux dossiers locaux sont concernés, envoyez la fusion (A40).",
    ),
    "SERVEUR-REQUETE-REFUSEE": (
        "hold",
        "Le serveur régional d'identités a refusé la recherche faite avec les identifiants et "
        "traits transmis (format non conforme). Vérifiez le format de l'INS et de son OID "
        "(PID-3), de la date de naissance (PID-7) et du sexe (PID-8).",
    ),
}

# HL7 v2 table 0001 -> FHIR administrative-gender (A ambiguous -> other, N n/a -> unknown)
_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
_COMPARED_GENDERS = frozenset({"male", "female", "other"})


def fhir_gender(pid8: str) -> str:
    """``"F"`` -> ``"female"``; unknown codes -> ``""``."""
    return _GENDER.get(pid8.strip().upper()[:1], "")


def fhir_birth_date(pid7: str) -> str:
    """``"19790328"`` (or with a time) -> ``"1979-03-28"``; anything shorter -> ``""``."""
    digits = pid7.strip()[:8]
    if len(digits) != 8 or not digits.isdigit():
        return ""
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the server says about the identity a message states.

    ``patient`` is the one server identity matched (``matched``/``mismatch``), else None;
    ``anomalies`` are ``(rule, severity, explanation)``; ``cross_references`` the
    identifiers PIXm links to the regional id (local ids of other facilities, INS...).
    """

    outcome: Outcome
    searched_by: Literal["ins", "traits", "none"]
    patient: ServerPatient | None = None
    cross_references: tuple[Identifier, ...] = ()
    anomalies: tuple[tuple[str, str, str], ...] = ()

    def __repr__(self) -> str:
        rules = ",".join(r for r, _, _ in self.anomalies)
        return f"Reconciliation({self.outcome}, by {self.searched_by}, anomalies=[{rules}])"

    @property
    def regional_id(self) -> str:
        return self.patient.regional_id if self.patient is not None else ""

    @property
    def ins(self) -> str:
        return self.patient.ins if self.patient is not None else ""

    @property
    def ins_oid(self) -> str:
        return self.patient.ins_oid if self.patient is not None else ""


def _traits_query(identity: PatientIdentity) -> TraitsQuery | None:
    birthdate = fhir_birth_date(identity.birth_date)
    gender = fhir_gender(identity.sex)
    gender = gender if gender in _COMPARED_GENDERS else ""
    if not identity.birth_name.strip() or not (birthdate or gender):
        return None  # PDQm needs family with birthdate or gender (ITI TF-2 3.78.4.1.2.1.1)
    return TraitsQuery(
        family=identity.birth_name,
        given=identity.first_given_name,
        birthdate=birthdate,
        gender=gender,
        birth_place=identity.birth_place,
    )


def _same_person(identity: PatientIdentity, p: ServerPatient) -> bool:
    """A trait search matches by prefix: keep the server identities whose birth name and
    birth date (when both sides have them) are equal once normalised."""
    if normalise_trait(identity.birth_name) != normalise_trait(p.birth_name):
        return False
    sent = fhir_birth_date(identity.birth_date)
    return not (sent and p.birth_date and sent != p.birth_date[:10])


def compare_traits(identity: PatientIdentity, p: ServerPatient) -> list[str]:
    """The rules broken: each trait compared only when the message and the server have it."""
    broken = []
    if identity.birth_name and p.birth_name:
        if normalise_trait(identity.birth_name) != normalise_trait(p.birth_name):
            broken.append("SERVEUR-NOM-NAISSANCE")
    if identity.first_given_name and p.first_given_name:
        if normalise_trait(identity.first_given_name) != normalise_trait(p.first_given_name):
            broken.append("SERVEUR-PRENOM")
    sent_date = fhir_birth_date(identity.birth_date)
    if sent_date and len(p.birth_date) >= 10 and sent_date != p.birth_date[:10]:
        broken.append("SERVEUR-DATE-NAISSANCE")
    sent_gender = fhir_gender(identity.sex)
    if (
        sent_gender in _COMPARED_GENDERS
        and p.gender in _COMPARED_GENDERS
        and sent_gender != p.gender
    ):
        broken.append("SERVEUR-SEXE")
    if identity.birth_place.strip() and p.birth_place:
        if identity.birth_place.strip().upper() != p.birth_place.strip().upper():
            broken.append("SERVEUR-LIEU-NAISSANCE")
    return broken


async def reconcile(
    client: IdentityServerClient,
    identity: PatientIdentity,
    *,
    cross_reference: bool = True,
    severities: Mapping[str, Severity] | None = None,
) -> Reconciliation:
    """Finds ``identity`` on the regional server and says how it differs.

    Raises :class:`identity.pdqm.IdentityServerUnavailable` when the server cannot be
    asked now (hold the message, retry after ``exc.retry_after``).
    """

    def anomalies(rules: list[str]) -> tuple[tuple[str, str, str], ...]:
        out = []
        for rule in rules:
            severity, text = RULES[rule]
            out.append((rule, (severities or {}).get(rule, severity), text))
        return tuple(out)

    searched_by: Literal["ins", "traits", "none"] = "none"
    extra: list[str] = []
    try:
        found: tuple[ServerPatient, ...] = ()
        if identity.ins.strip():
            searched_by = "ins"
            found = await client.search_by_ins(identity.ins, identity.ins_oid)
        if not found:
            query = _traits_query(identity)
            if query is None:
                if searched_by == "none":
                    return Reconciliation("skipped", "none")
            else:
                searched_by = "traits"
                found = tuple(
                    p for p in await client.search_by_traits(query) if _same_person(identity, p)
                )
                if found and identity.ins.strip():
                    extra.append("SERVEUR-INS")  # the INS was not found, the traits were
        if not found:
            return Reconciliation("unknown", searched_by, anomalies=anomalies(["SERVEUR-INCONNU"]))
        if len(found) > 1:
            return Reconciliation("ambiguous", searched_by, anomalies=anomalies(["SERVEUR-AMBIGU"]))
        patient = found[0]
        broken = extra + compare_traits(identity, patient)
        if not patient.active:
            broken.append("SERVEUR-IDENTITE-INACTIVE")
        xrefs: tuple[Identifier, ...] = ()
        if cross_reference and patient.regional_id:
            source = Identifier(client.config.regional_id_system, patient.regional_id)
            xrefs = await client.cross_references(source) or ()
    except IdentityServerError:
        return Reconciliation(
            "refused", searched_by, anomalies=anomalies(["SERVEUR-REQUETE-REFUSEE"])
        )
    return Reconciliation(
        "mismatch" if broken else "matched",
        searched_by,
        patient,
        xrefs,
        anomalies(broken),
    )
