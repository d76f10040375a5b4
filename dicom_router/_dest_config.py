"""The ``dicom`` destination's settings in routes.yaml (no DICOM library: ``eai check``
validates them without loading pynetdicom)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from eai.config import DestinationConfig, Duration, TlsClientConfig
from eai.messages import SendLimits

__all__ = ["DicomDestinationConfig"]


def _check_ae(value: str) -> str:
    if not 0 < len(value.strip()) <= 16 or "\\" in value or not value.isascii():
        raise ValueError(f"{value!r} is not an AE title (1 to 16 ASCII characters, no backslash)")
    return value.strip()


class DicomDestinationConfig(DestinationConfig):
    """A DICOM Storage SCP to forward instances to (C-STORE), optionally over TLS."""

    type: Literal["dicom"] = "dicom"
    ae_title: str = Field(
        description="the peer's AE title (called AE)", examples=["EMAGE_ROUTER_1"]
    )
    host: str = Field(min_length=1, description="peer host name or address", examples=["pacs"])
    port: int = Field(ge=1, le=65535, description="peer DICOM port", examples=[104, 11112])
    calling_ae: str = Field(
        "EAI", description="our AE title in the association (calling AE)", examples=["EAI_ROUTER"]
    )
    tls: TlsClientConfig | None = Field(None, description="DICOM TLS (PS3.15 B.12)")
    connections: int = Field(
        1,
        ge=1,
        le=16,
        description="associations used in parallel, each for a different study "
        "(1 keeps the overall order)",
    )
    max_pdu: int = Field(
        262144, ge=4096, le=16 * 1024 * 1024, description="our Maximum Length Received (bytes)"
    )
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description="how much the forwarding process lowers its CPU priority: forwarding "
        "is retried in the background, while a modality waits for each answer of the "
        "listeners (0: same priority as the engine)",
    )
    connect_timeout: Duration = Field(10.0, gt=0, description="time allowed to connect")
    acse_timeout: Duration = Field(30.0, gt=0, description="time allowed for negotiation")
    dimse_timeout: Duration = Field(
        60.0, gt=0, description="time allowed for the peer's C-STORE response"
    )
    network_timeout: Duration = Field(
        60.0, gt=0, description="abort an association silent this long"
    )
    idle_release: Duration = Field(
        10.0, gt=0, description="release an association unused this long", examples=["10s"]
    )

    def send_limits(self) -> SendLimits:
        return SendLimits(
            self.connections, self.connect_timeout, self.acse_timeout + self.dimse_timeout
        )

    @field_validator("ae_title", "calling_ae")
    @classmethod
    def _titles(cls, value: str) -> str:
        return _check_ae(value)
