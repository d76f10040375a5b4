"""Expiry of the certificates ``routes.yaml`` names (TLS of listeners and destinations, seals).

Touches: files (reads each PEM certificate once per change of its mtime).

Every field named ``cert`` or ``*_cert`` holding a path, at any depth of a listener's
or a destination's config (``tls.cert``, the DMP's ``sign_cert``...), is one series of
``eai_certificate_expiry_timestamp_seconds`` (the first certificate of the file: the
end entity); a file that cannot be read or parsed gives ``eai_certificate_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel

__all__ = ["CertificateGauges", "certificate_fields"]


def _fields(model: BaseModel, prefix: str) -> Iterator[tuple[str, Path]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _fields(value, f"{prefix}{name}.")
        elif isinstance(value, Path) and (name == "cert" or name.endswith("_cert")):
            yield f"{prefix}{name}", value


def certificate_fields(
    owners: Iterable[tuple[str, BaseModel]],
) -> list[tuple[str, str, str, Path]]:
    """(owner kind, owner name, field path, file) for each certificate path of ``owners``
    ((kind, config) pairs; the config's ``name`` names it)."""
    found: list[tuple[str, str, str, Path]] = []
    for kind, model in owners:
        name = str(getattr(model, "name", ""))
        found.extend((kind, name, field, path) for field, path in _fields(model, ""))
    return found


class CertificateGauges(Collector):
    """The not-after time of each configured certificate, re-read when its file changes."""

    def __init__(self, fields: list[tuple[str, str, str, Path]]) -> None:
        self._fields = fields
        self._cache: dict[Path, tuple[int, float]] = {}

    def set_fields(self, fields: list[tuple[str, str, str, Path]]) -> None:
        self._fields = fields

    def _not_after(self, path: Path) -> float | None:
        try:
            mtime = path.stat().st_mtime_ns
            cached = self._cache.get(path)
            if cached is not None and cached[0] == mtime:
                return cached[1]
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return None
        at = cert.not_valid_after_utc.timestamp()
        self._cache[path] = (mtime, at)
        return at

    def collect(self) -> Iterator[Metric]:
        labels = ["owner", "name", "field"]
        expiry = GaugeMetricFamily(
            "eai_certificate_expiry_timestamp_seconds",
            "not-after time (Unix seconds) of each certificate routes.yaml names",
            labels=labels,
        )
        errors = GaugeMetricFamily(
            "eai_certificate_errors",
            "1 when a certificate routes.yaml names cannot be read or parsed",
            labels=labels,
        )
        for kind, name, field, path in self._fields:
            at = self._not_after(path)
            if at is not None:
                expiry.add_metric([kind, name, field], at)
            errors.add_metric([kind, name, field], 0.0 if at is not None else 1.0)
        yield expiry
        yield errors
