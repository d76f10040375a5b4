"""When the certificates a config names expire: TLS (listeners, destinations) and signing keys.

Touches: files (reads PEM certificates; each file parsed again only when it changed).

A connector's config is read generically: ``tls.cert``, ``tls.ca``, ``tls.client_ca``
and ``sign_cert`` (the DMP's VIHF seal) wherever a listener or destination has them.
A bundle counts by its soonest expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from eai.config import Config

__all__ = ["CertFile", "ExpiryCache", "cert_files"]

log = logging.getLogger(__name__)

_FIELDS = (("tls", "cert"), ("tls", "ca"), ("tls", "client_ca"), ("sign_cert",))


@dataclass(frozen=True, slots=True)
class CertFile:
    scope: str  # listener:NAME | destination:NAME
    field: str  # tls.cert, sign_cert...
    path: Path


def cert_files(config: Config) -> Iterator[CertFile]:
    for kind, items in (("listener", config.listeners), ("destination", config.destinations)):
        for item in items:
            for path_of in _FIELDS:
                value: object = item
                for attr in path_of:
                    value = getattr(value, attr, None)
                if isinstance(value, Path | str) and str(value):
                    yield CertFile(f"{kind}:{item.name}", ".".join(path_of), Path(value))


class ExpiryCache:
    """The soonest ``notAfter`` (naive UTC) of the certificates in a PEM file."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[float, int, datetime | None]] = {}

    def expiry(self, path: Path) -> datetime | None:
        try:
            st = path.stat()
        except OSError:
            return None
        cached = self._seen.get(path)
        if cached is not None and cached[:2] == (st.st_mtime, st.st_size):
            return cached[2]
        from cryptography import x509  # here: read at the first expiry check, not at start

        found: datetime | None = None
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("certificate %s unreadable for its expiry: %s", path, type(exc).__name__)
            certs = []
        for cert in certs:
            at = cert.not_valid_after_utc.replace(tzinfo=None)
            if found is None or at < found:
                found = at
        self._seen[path] = (st.st_mtime, st.st_size, found)
        return found
