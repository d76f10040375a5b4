"""TLS config models and the contexts (>= 1.2, optionally mutual) built from them.

Touches: files (reads the PEM certificates and keys).

The models are :class:`TlsServerConfig` (``cert``, ``key``, ``client_ca``,
``require_client_cert``) and :class:`TlsClientConfig` (``ca``, ``cert``, ``key``,
``server_hostname``), the ``tls:`` of routes.yaml (re-exported by :mod:`eai.config`);
every listener and destination (MLLP, HTTP, DICOM) builds its context here.
An unreadable file is a :class:`~eai.errors.ConfigError` naming it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, model_validator

from eai.errors import ConfigError, ConfigIssue
from eai.model import Model

__all__ = ["TlsClientConfig", "TlsServerConfig", "client_context", "server_context"]


class TlsServerConfig(Model):
    cert: Path = Field(description="PEM certificate chain of this listener")
    key: Path = Field(description="PEM private key of this listener")
    client_ca: Path | None = Field(
        default=None, description="PEM CA bundle; when set, client certificates are verified"
    )
    require_client_cert: bool = Field(
        default=False, description="refuse clients without a certificate signed by client_ca"
    )

    @model_validator(mode="after")
    def _client_ca_for_required_certs(self) -> TlsServerConfig:
        if self.require_client_cert and self.client_ca is None:
            raise ValueError("require_client_cert needs client_ca to verify clients against")
        return self


class TlsClientConfig(Model):
    ca: Path | None = Field(
        default=None, description="PEM CA bundle to verify the server; default: system"
    )
    cert: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key: Path | None = Field(default=None, description="client private key (mutual TLS)")
    server_hostname: str | None = Field(
        default=None, description="name to check in the server certificate"
    )


def server_context(cfg: TlsServerConfig) -> ssl.SSLContext:
    """TLS >= 1.2 server context; verifies client certificates when ``client_ca`` is set.

    ``require_client_cert`` gives CERT_REQUIRED, ``client_ca`` alone CERT_OPTIONAL
    (a client may connect without a certificate, one it presents is checked).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, cfg.cert, cfg.key)
    if cfg.client_ca is not None:
        _load_ca(ctx, cfg.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if cfg.require_client_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(cfg: TlsClientConfig) -> ssl.SSLContext:
    """TLS >= 1.2 client context verifying the server (``ca`` or the system store)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.ca is not None:
        _load_ca(ctx, cfg.ca)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cfg.cert is not None:
        _load_chain(ctx, cfg.cert, cfg.key)
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path | None) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise _issue(cert, f"cannot load TLS certificate and key: {exc}") from exc


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise _issue(ca, f"cannot load TLS CA bundle: {exc}") from exc


def _issue(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file=str(path), line=0, column=0, message=message)])
