"""The DICOM listener's configuration models: the SCP's AE title, callers, limits and timeouts.

Touches: nothing (validation only).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from eai.config import Duration, ListenerConfig, Model, TlsServerConfig
from eai.net import BindAddress, NetworkList, split_bind

__all__ = ["AllowedCaller", "DicomListenerConfig"]

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: no backslash, no control


def _check_ae_title(value: str) -> str:
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError(
            f"{value!r} is not an AE title: 1 to 16 printable ASCII characters, no backslash"
        )
    return value.strip()


class AllowedCaller(Model):
    """A calling AE title allowed to associate, optionally only from some addresses."""

    ae_title: str = Field(description="calling AE title (exact, case-sensitive)", examples=["CT1"])
    hosts: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="source IP addresses or networks (CIDR) this AE may come from; "
        "unset: any address",
        examples=[["10.1.2.3", "10.1.8.0/24"]],
    )

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for host in value or ():
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ValueError(
                    f"{host!r} is not an IP address or network (host names are not resolved)"
                ) from None
        return value


class DicomListenerConfig(ListenerConfig):
    """A DICOM Storage SCP (C-STORE, C-ECHO), optionally over TLS (PS3.15 B.12)."""

    type: Literal["dicom"] = "dicom"
    ae_title: str = Field(
        description="this SCP's AE title; associations calling another title are refused",
        examples=["EAI_ROUTER"],
    )
    bind: BindAddress = Field(
        description="address and port to listen on, host:port (port 0: chosen by the OS)",
        examples=["0.0.0.0:104", "127.0.0.1:11112"],
    )
    allowed_callers: tuple[AllowedCaller, ...] = Field(
        min_length=1,
        description="calling AE titles (and source addresses) accepted; any other association "
        "is refused with A-ASSOCIATE-RJ calling-AE-title-not-recognized",
    )
    spool_dir: Path = Field(
        description="where received instances are kept until delivered (encrypted, each "
        "under a data key that only the journal holds)",
        examples=["/var/lib/eai/spool/chu-x-imaging"],
    )
    tls: TlsServerConfig | None = Field(
        None, description="DICOM TLS (PS3.15 B.12); client_ca verifies client certificates"
    )
    max_pdu: int = Field(
        262144,
        ge=4096,
        le=16 * 1024 * 1024,
        description="largest PDU accepted (Maximum Length Received, bytes); a PDU announcing "
        "more is aborted",
        examples=[262144],
    )
    max_associations: int = Field(
        16,
        ge=1,
        le=1024,
        description="simultaneous established associations; more are refused (transient). "
        "Connections still negotiating are counted apart (at most max(64, 4 x this); past "
        "it a new connection evicts the one negotiating for the longest)",
    )
    allowed_networks: NetworkList = Field(
        (),
        description="source addresses or networks (CIDR) allowed to connect; a connection "
        "from elsewhere is closed at accept, unread. Empty: any address (allowed_callers "
        "hosts still apply to each AE title)",
        examples=[["10.1.8.0/24", "192.168.40.17"]],
    )
    max_associations_per_peer: int = Field(
        8,
        ge=1,
        description="simultaneous connections (negotiating or established) from one source "
        "address; one more is closed at once",
        examples=[8],
    )
    max_instance_size: int = Field(
        2 * 1024**3,
        ge=64 * 1024,
        description="largest data set accepted (bytes); a larger instance is read, dropped "
        "and answered 0xA700. Each association holds its instance in memory until it is "
        "spooled: at most max_associations x this",
        examples=[2147483648],
    )
    acse_timeout: Duration = Field(
        30.0,
        gt=0,
        description="time from a connection's accept (TLS handshake included) to its "
        "A-ASSOCIATE-RQ being answered (ARTIM); a connection still negotiating then is closed",
        examples=["30s"],
    )
    dimse_timeout: Duration = Field(
        60.0,
        gt=0,
        description="time allowed to receive a whole DIMSE message (command and data set) "
        "once it started; an association still sending it then is aborted",
        examples=["60s"],
    )
    network_timeout: Duration = Field(
        60.0,
        gt=0,
        description="close an association idle (or stalled mid-PDU) this long",
        examples=["60s"],
    )
    journal_timeout: Duration = Field(
        30.0,
        gt=0,
        description="how long a C-STORE waits for the journal commit before answering 0xA700",
        examples=["30s"],
    )
    quota_bytes: int | None = Field(
        None,
        gt=0,
        description="largest spool size; past it instances are refused with 0xA700, and a "
        "WARNING is logged at 90%. Unset: no quota",
        examples=[100 * 1024**3],
    )
    retention: Duration = Field(
        86400.0,
        description="keep an instance this long after all its deliveries succeeded (or after "
        "it was filtered), then remove it from the spool",
        examples=["1d", "2h", "0s"],
    )

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _check_ae_title(value)

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def bind_port(self) -> int:
        return split_bind(self.bind)[1]

    def caller_allowed(self, ae_title: str, address: str) -> bool:
        """True when ``ae_title`` may associate from ``address``."""
        return self.caller_refusal(ae_title, address) is None

    def caller_refusal(self, ae_title: str, address: str) -> str | None:
        """Why ``ae_title`` may not associate from ``address`` (its title is unknown, or
        it comes from a host its entry does not list), or None when it may."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        hosts: list[str] = []
        for caller in self.allowed_callers:
            if caller.ae_title != ae_title:
                continue
            if caller.hosts is None:
                return None
            if ip is not None and any(
                ip in ipaddress.ip_network(h, strict=False) for h in caller.hosts
            ):
                return None
            hosts.extend(caller.hosts)
        if not hosts:
            return f"calling AE title {ae_title!r} is not in allowed_callers"
        return (
            f"host {address} refused: calling AE title {ae_title!r} is allowed only from "
            f"{', '.join(hosts)}"
        )
