"""Build TLS contexts (>= 1.2, optionally mutual) from a listener's or destination's config.

Touches: files (reads the PEM certificates and keys).

The models are :class:`eai.config.TlsServerConfig` (``cert``, ``key``, ``client_ca``,
``require_client_cert``) and :class:`eai.config.TlsClientConfig` (``ca``, ``cert``,
``key``); every listener and destination (MLLP, HTTP, DICOM) builds its context here.
An unreadable file is a :class:`~eai.errors.ConfigError` naming it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from eai.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from eai.config import TlsClientConfig, TlsServerConfig

__all__ = ["client_context", "server_context"]


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
