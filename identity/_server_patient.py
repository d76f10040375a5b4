"""The identity server's patients as reconciliation compares them, read from FR Core Patients.

Touches: nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from identity.ins import INS_NIA_OID, INS_NIR_DEMO_OID, INS_NIR_OID, INS_NIR_TEST_OID

__all__ = [
    "BIRTH_LIST_GIVEN_NAME_EXT",
    "BIRTH_PLACE_EXT",
    "INSEE_CODE_EXT",
    "INS_OIDS",
    "Identifier",
    "ServerPatient",
    "TraitsQuery",
    "oid_system",
    "patient_from_fhir",
]

INS_OIDS = (INS_NIR_OID, INS_NIA_OID, INS_NIR_TEST_OID, INS_NIR_DEMO_OID)
BIRTH_PLACE_EXT = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_EXT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
BIRTH_LIST_GIVEN_NAME_EXT = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)


@dataclass(frozen=True, slots=True)
class Identifier:
    """A FHIR Identifier: ``system`` (``urn:oid:...`` or a URI) and ``value``."""

    system: str
    value: str

    def __repr__(self) -> str:
        return f"Identifier(system={self.system!r}, value=<{len(self.value)} chars>)"

    @property
    def token(self) -> str:
        """``system|value`` with FHIR search escaping (``\\``, ``|``, ``,``, ``$``)."""
        return f"{_escape(self.system)}|{_escape(self.value)}"


@dataclass(frozen=True, slots=True)
class ServerPatient:
    """A Patient of the identity server, reduced to what reconciliation compares.

    ``birth_date`` is a FHIR date (``YYYY-MM-DD``), ``gender`` a FHIR administrative
    gender, ``birth_place`` an INSEE code; ``regional_id`` is the identifier whose system
    is ``regional_id_system`` (empty if the server gave none).
    """

    resource_id: str
    regional_id: str
    ins: str = ""
    ins_oid: str = ""
    birth_name: str = ""
    first_given_name: str = ""
    birth_given_names: tuple[str, ...] = ()
    birth_date: str = ""
    gender: str = ""
    birth_place: str = ""
    active: bool = True
    replaced_by: str = ""
    identifiers: tuple[Identifier, ...] = ()

    def __repr__(self) -> str:  # never print traits or identifiers
        return f"ServerPatient(<{len(self.identifiers)} identifiers>, active={self.active})"


@dataclass(frozen=True, slots=True)
class TraitsQuery:
    """A PDQm search by traits: FHIR forms (``birthdate`` YYYY-MM-DD, ``gender`` male...)."""

    family: str
    given: str = ""
    birthdate: str = ""
    gender: str = ""
    birth_place: str = ""

    def __repr__(self) -> str:
        return "TraitsQuery(<traits>)"


def oid_system(oid: str) -> str:
    """``1.2.250...`` -> ``urn:oid:1.2.250...`` (a URI or ``urn:`` system is kept)."""
    oid = oid.strip()
    return oid if oid.startswith(("urn:", "http://", "https://")) else f"urn:oid:{oid}"


def _escape(value: str) -> str:
    # FHIR search: \ , | $ in a token value are escaped with a backslash (search.html#escaping)
    for ch in ("\\", ",", "|", "$"):
        value = value.replace(ch, "\\" + ch)
    return value


# --- FR Core Patient -> ServerPatient -----------------------------------------------------


def _ext(items: Any, url: str) -> list[Mapping[str, Any]]:
    return [
        e for e in items or () if isinstance(e, Mapping) and str(e.get("url", "")).endswith(url)
    ]


def _birth_place(resource: Mapping[str, Any]) -> str:
    for ext in _ext(resource.get("extension"), "patient-birthPlace"):
        address = ext.get("valueAddress")
        if not isinstance(address, Mapping):
            continue
        for code in _ext(address.get("extension"), "fr-core-address-insee-code"):
            coding = code.get("valueCoding")
            if isinstance(coding, Mapping) and coding.get("code"):
                return str(coding["code"]).strip()
    return ""


def _official_name(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    names = [n for n in resource.get("name") or () if isinstance(n, Mapping)]
    for name in names:
        if name.get("use") == "official":  # FR Core: the birth name slice (use = official)
            return name
    return names[0] if names else {}


def patient_from_fhir(resource: Mapping[str, Any], regional_system: str) -> ServerPatient:
    """Reads an FR Core Patient: INS identifier (INS OIDs), official (birth) name with the
    birth given names extension, birthDate, gender, patient-birthPlace with its INSEE code."""
    identifiers = tuple(
        Identifier(str(i["system"]), str(i["value"]))
        for i in resource.get("identifier") or ()
        if isinstance(i, Mapping) and i.get("system") and i.get("value")
    )
    regional = next((i.value for i in identifiers if i.system == regional_system), "")
    ins = ins_oid = ""
    for ident in identifiers:
        oid = ident.system.removeprefix("urn:oid:")
        if oid in INS_OIDS:
            ins, ins_oid = ident.value, oid
            break
    name = _official_name(resource)
    given = tuple(str(g) for g in name.get("given") or ())
    listed: tuple[str, ...] = ()
    for ext in _ext(name.get("extension"), "birth-list-given-name"):
        listed += tuple(str(ext.get("valueString", "")).split())
    replaced_by = ""
    for link in resource.get("link") or ():
        if isinstance(link, Mapping) and link.get("type") == "replaced-by":
            other = link.get("other")
            if isinstance(other, Mapping):
                replaced_by = str(other.get("reference", ""))
    return ServerPatient(
        resource_id=str(resource.get("id", "")),
        regional_id=regional,
        ins=ins,
        ins_oid=ins_oid,
        birth_name=str(name.get("family", "")),
        first_given_name=given[0] if given else "",
        birth_given_names=listed or given,
        birth_date=str(resource.get("birthDate", "")),
        gender=str(resource.get("gender", "")),
        birth_place=_birth_place(resource),
        active=resource.get("active") is not False,
        replaced_by=replaced_by,
        identifiers=identifiers,
    )
