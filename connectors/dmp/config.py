"""The ``dmp`` destination's config: the repository, the certificates, the structure.

Touches: nothing (paths are checked when the destination is built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from connectors.dmp._vihf_settings import VihfSettings
from eai.config import DestinationConfig, Duration, Model, TlsClientConfig
from eai.messages import SendLimits
from eai.xds import DEFAULT_CLASS_CODES, DEFAULT_FORMAT_CODES, Code, MetadataSettings

__all__ = ["CodedValue", "DmpDestinationConfig"]

_OID = r"^[0-2](\.(0|[1-9]\d*))+$"


class CodedValue(Model):
    """A code of a CI-SIS terminology."""

    code: str = Field(min_length=1, description="the code", examples=["10"])
    system: str = Field(
        pattern=_OID, description="its code system's OID", examples=["1.2.250.1.213.1.1.4.1"]
    )
    display: str = Field("", description="its display name", examples=["Compte rendu"])

    def as_code(self) -> Code:
        return Code(self.code, self.system, self.display)


class DmpDestinationConfig(DestinationConfig):
    """The DMP (shared medical record): IHE XDS.b Provide and Register (ITI-41), SOAP 1.2
    + MTOM over mutual TLS, signed VIHF, CI-SIS metadata."""

    type: Literal["dmp"] = "dmp"
    require_qualified_identity: bool = Field(
        default=True,
        description="hold deliveries whose patient identity is not qualified: the DMP takes "
        "a qualified INS only (on by default)",
    )
    url: str = Field(
        pattern=r"^https://",
        description="the DMP repository's ITI-41 endpoint (also the WS-Addressing To)",
        examples=["https://lps2.dmp.gouv.fr/si-dmp-server/v2/services/repository"],
    )
    registry_url: str | None = Field(
        None,
        pattern=r"^https://",
        description="the DMP registry's ITI-57 endpoint (Update Document Set), where a "
        "deletion (ORC-1 CA / OBX-11 D, MDM^T04/T11) is sent; without it a deletion is a dead "
        "letter",
        examples=["https://lps2.dmp.gouv.fr/si-dmp-server/v2/services/registry"],
    )
    tls: TlsClientConfig = Field(
        description="mutual TLS: the structure's authentication certificate and key (the DMP "
        "refuses a connection without them: deliveries are then retried), the CA of the "
        "DMP's server certificate"
    )
    sign_cert: Path = Field(description="PEM certificate of the structure's seal (signs the VIHF)")
    sign_key: Path = Field(description="PEM RSA private key of the seal")
    source_id: str = Field(
        pattern=_OID,
        description="XDSSubmissionSet.sourceId: the OID of the publishing system",
        examples=["1.2.250.1.999.1.1"],
    )
    structure_id: str = Field(
        min_length=1, description="VIHF Identifiant_Structure", examples=["1120459876"]
    )
    activity_sector: str = Field(
        pattern=r"^[^^]+\^[0-2](\.\d+)+$",
        description="VIHF Secteur_Activite, code^OID",
        examples=["SA25^1.2.250.1.71.4.2.4"],
    )
    software_name: str = Field("eai", min_length=1, description="VIHF LPS_Nom")
    software_version: str = Field("1.0", min_length=1, description="VIHF LPS_Version")
    homologation_id: str = Field(
        min_length=1, description="VIHF LPS_ID_HOMOLOGATION_DMP (the DMP's homologation number)"
    )
    software_id: str = Field("", description="VIHF LPS_ID (optional)")
    default_role: CodedValue | None = Field(
        None,
        description="VIHF subject:role when the document's author has no G15 profession code",
    )
    content_type_code: CodedValue | None = Field(
        None,
        description="submission set contentTypeCode when PV1-2 gives none (a CDA alone)",
    )
    class_codes: dict[str, CodedValue] = Field(
        default_factory=dict,
        description="classCode by document typeCode (LOINC), added to (or overriding) the "
        f"bundled ANS table ASS_X04 ({len(DEFAULT_CLASS_CODES)} types)",
    )
    format_codes: dict[str, CodedValue] = Field(
        default_factory=dict,
        description="formatCode by CDA model templateId, added to (or overriding) the "
        f"bundled ANS table ASS_A11 ({len(DEFAULT_FORMAT_CODES)} models)",
    )
    connect_timeout: Duration = Field(
        10.0, gt=0, description="time allowed to connect (TLS included)"
    )
    response_timeout: Duration = Field(
        60.0, gt=0, description="time allowed for the repository's answer"
    )
    connections: int = Field(1, ge=1, le=16, description="requests in flight at once")
    max_response_bytes: int = Field(
        1024 * 1024, gt=0, description="largest answer read from the repository"
    )

    def send_limits(self) -> SendLimits:
        return SendLimits(self.connections, self.connect_timeout, self.response_timeout)

    def metadata_settings(self) -> MetadataSettings:
        return MetadataSettings(
            source_id=self.source_id,
            content_type=self.content_type_code.as_code() if self.content_type_code else None,
            class_codes={
                **DEFAULT_CLASS_CODES,
                **{k: v.as_code() for k, v in self.class_codes.items()},
            },
            format_codes={
                **DEFAULT_FORMAT_CODES,
                **{k: v.as_code() for k, v in self.format_codes.items()},
            },
        )

    def vihf_settings(self) -> VihfSettings:
        return VihfSettings(
            structure_id=self.structure_id,
            activity_sector=self.activity_sector,
            software_name=self.software_name,
            software_version=self.software_version,
            homologation_id=self.homologation_id,
            software_id=self.software_id,
            default_role=self.default_role.as_code() if self.default_role else None,
        )
