"""The ``mssante`` destination's config: the operator's SMTP server, the application mailbox.

Touches: nothing (certificate paths are read when the destination is built).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from eai.config import DestinationConfig, Duration, Model, TlsClientConfig
from eai.messages import SendLimits
from eai.xds import DEFAULT_CLASS_CODES, DEFAULT_FORMAT_CODES, Code, MetadataSettings

__all__ = ["CodedValue", "MssanteDestinationConfig"]

_OID = r"^[0-2](\.(0|[1-9]\d*))+$"
_MAILBOX = r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$"


class CodedValue(Model):
    """A code of a CI-SIS terminology."""

    code: str = Field(min_length=1, description="the code", examples=["10"])
    system: str = Field(pattern=_OID, description="its code system's OID")
    display: str = Field("", description="its display name")

    def as_code(self) -> Code:
        return Code(self.code, self.system, self.display)


class MssanteDestinationConfig(DestinationConfig):
    """MSSanté (secure health messaging): CI-SIS documents mailed over SMTP with TLS from an
    application mailbox, in an IHE XDM zip, with the X-MSS headers."""

    type: Literal["mssante"] = "mssante"
    host: str = Field(min_length=1, description="the MSSanté operator's SMTP server")
    port: int = Field(587, ge=1, le=65535, description="its port (587 STARTTLS, 465 implicit)")
    security: Literal["starttls", "tls"] = Field(
        "starttls", description="STARTTLS after EHLO, or TLS from the first byte (implicit)"
    )
    tls: TlsClientConfig = Field(
        description="the application mailbox's client certificate and key (IGC-Santé), the CA "
        "of the operator's server certificate; TLS >= 1.2"
    )
    sender: str = Field(
        pattern=_MAILBOX,
        description="the application mailbox (BAL applicative): From, envelope sender, and "
        "where delivery and read receipts come back",
        examples=["labo-auto@labo.mssante.fr"],
    )
    user: str = Field("", description="SMTP AUTH user ('' = no AUTH: the certificate only)")
    password: SecretStr | None = Field(
        None, description="SMTP AUTH password ('' = none); keep it in the environment"
    )
    software_id: str = Field(
        "",
        description="X-MSS-NIL: the software's reference for the MSSanté client rules "
        "(Référentiel socle MSSanté #2), on every mail when set",
    )
    source_id: str = Field(
        pattern=_OID,
        description="XDSSubmissionSet.sourceId of METADATA.XML: the OID of the sending system",
        examples=["1.2.250.1.999.1.1"],
    )
    subject: str = Field(
        "XDM/1.0/DDM+{title}",
        description="the mail subject; {title} is the document's title (no patient data: "
        "names stay in the attachment)",
    )
    body_ps: str = Field(
        "Veuillez trouver ci-joint le document « {title} ».",
        description="the professionals' body when the message has no CORPSMAIL_PS",
    )
    body_patient: str = Field(
        "Veuillez trouver ci-joint votre document « {title} ».",
        description="the patient's body when the message has no CORPSMAIL_PATIENT",
    )
    content_type_code: CodedValue | None = Field(
        None, description="submission set contentTypeCode when PV1-2 gives none"
    )
    class_codes: dict[str, CodedValue] = Field(
        default_factory=dict, description="classCode by typeCode, added to the bundled table"
    )
    format_codes: dict[str, CodedValue] = Field(
        default_factory=dict, description="formatCode by templateId, added to the bundled table"
    )
    connect_timeout: Duration = Field(
        10.0, gt=0, description="time allowed to connect (TLS and EHLO included)"
    )
    response_timeout: Duration = Field(60.0, gt=0, description="time allowed for each SMTP answer")
    connections: int = Field(2, ge=1, le=16, description="mails in flight at once")

    @model_validator(mode="after")
    def _auth_pair(self) -> MssanteDestinationConfig:
        if bool(self.user) != bool(self.password and self.password.get_secret_value()):
            raise ValueError("user and password go together (SMTP AUTH) or not at all")
        return self

    def needs_qualified_identity(self, flags: Mapping[str, str]) -> bool:
        """The patient's mailbox is its INS: a mail for the patient waits for a qualified
        identity; one for professionals only goes with ``X-MSS-INS: N``."""
        return self.require_qualified_identity or flags.get("DESTMSSANTEPAT") == "Y"

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
