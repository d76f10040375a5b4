"""The supervision endpoint the engine starts: ``/metrics``, ``/livez``, ``/readyz``.

Touches: network (its server socket), DB (scrape reads, the readiness write), files
(statvfs of the data dir and the DICOM spools, the configured certificates).

``/metrics`` exposes, in the Prometheus text format, the in-memory instruments of
:mod:`eai.metrics`; the journal's gauges (queue depth, dead letters and oldest age per
destination, the pipeline's backlog, alerts firing) as last read by their refresher
thread every ``gauge_refresh`` (:mod:`eai.metrics._gauges`: a scrape runs no SQL); and,
computed at each scrape from the engine's state: listeners up, workers up, the identity
server up, free disk space, certificate expiry.
``/livez`` answers 200 while the process serves HTTP; ``/readyz`` 200 or 503 with a
JSON detail (:func:`eai.metrics._health.readiness`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import Engine

from eai.config import Config, MetricsConfig
from eai.metrics._certs import CertificateGauges, certificate_fields
from eai.metrics._exposition import exposition
from eai.metrics._gauges import JournalGauges, scrape_statements
from eai.metrics._health import EngineState, Readiness, readiness, touch_ready_row
from eai.metrics._http import HealthHttp
from eai.metrics._instruments import registry
from eai.store import utcnow

__all__ = [
    "CertificateGauges",
    "EngineState",
    "JournalGauges",
    "MetricsEndpoint",
    "Readiness",
    "readiness",
    "certificate_fields",
    "scrape_statements",
    "touch_ready_row",
]


class _Instruments(Collector):
    """The process-wide instruments, inside the endpoint's own registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(registry().collect())


class _StateGauges(Collector):
    """Listeners, workers and the identity server up, the data dir's disk, at each scrape."""

    def __init__(self, state: EngineState, volumes: list[tuple[str, Path]]) -> None:
        self._state = state
        self._volumes = volumes

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "eai_listener_up", "1 while a listener is bound and serving", labels=["listener"]
        )
        for name, ok in sorted(self._state.listeners().items()):
            up.add_metric([name], 1.0 if ok else 0.0)
        yield up
        workers = GaugeMetricFamily(
            "eai_worker_up",
            "1 while a worker runs (pipeline, scheduler, each destination's delivery worker)",
            labels=["worker"],
        )
        for name, ok in sorted(self._state.workers().items()):
            workers.add_metric([name], 1.0 if ok else 0.0)
        yield workers
        identity = self._state.identity_server()
        if identity is not None:
            yield GaugeMetricFamily(
                "eai_identity_server_up",
                "0 during an outage of the regional identity server (deliveries held)",
                value=1.0 if identity else 0.0,
            )
        size = GaugeMetricFamily(
            "eai_disk_size_bytes",
            "size of the file system of the data dir and of each DICOM spool",
            labels=["volume"],
        )
        free = GaugeMetricFamily(
            "eai_disk_free_bytes",
            "space left on it for the engine (not counting the blocks reserved to root)",
            labels=["volume"],
        )
        for volume, path in self._volumes:
            try:
                st = os.statvfs(path)
            except OSError:
                continue  # not there (yet): no sample rather than a false "full"
            size.add_metric([volume], float(st.f_blocks * st.f_frsize))
            free.add_metric([volume], float(st.f_bavail * st.f_frsize))
        yield size
        yield free


def _volumes(config: Config) -> list[tuple[str, Path]]:
    """``data_dir``, and ``spool:<listener>`` for each listener with a ``spool_dir``."""
    found = [("data_dir", Path(config.engine.data_dir))]
    for listener in config.listeners:
        spool = getattr(listener, "spool_dir", None)
        if isinstance(spool, Path):
            found.append((f"spool:{listener.name}", spool))
    return found


def _rules(config: Config) -> list[str]:
    """The alert rules ``alerts:`` runs (none without the section)."""
    return [rule.rule for rule in config.alerts.rules] if config.alerts is not None else []


def _owners(config: Config) -> list[tuple[str, BaseModel]]:
    return [("listener", c) for c in config.listeners] + [
        ("destination", c) for c in config.destinations
    ]


class MetricsEndpoint:
    """Binds ``config.bind`` at construction (a busy port fails the start); serves on its
    own threads from :meth:`start` to :meth:`stop`."""

    def __init__(
        self,
        config: MetricsConfig,
        engine_config: Config,
        database: Engine,
        state: EngineState,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Instruments())
        self._journal = JournalGauges(
            database,
            self._names(engine_config),
            utcnow,
            _rules(engine_config),
            config.gauge_refresh,
        )
        self.registry.register(self._journal)
        self.registry.register(_StateGauges(state, _volumes(engine_config)))
        self._certs = CertificateGauges(certificate_fields(_owners(engine_config)))
        self.registry.register(self._certs)
        self._http = HealthHttp(config.bind, self.scrape, Readiness(state, config.ready_timeout))

    @staticmethod
    def _names(config: Config) -> Sequence[str]:
        return [d.name for d in config.destinations]

    @property
    def port(self) -> int:
        return self._http.port

    def reconfigure(self, config: Config) -> None:
        """After a reload: the new destinations' queues, alert rules, certificate paths."""
        self._journal.reconfigure(self._names(config), _rules(config))
        self._certs.set_fields(certificate_fields(_owners(config)))

    def scrape(self) -> bytes:
        """The ``/metrics`` body: every collector, in the text format."""
        return exposition(self.registry.collect())

    def start(self) -> None:
        """Serves, and starts the journal gauges' refresher (its first read at once)."""
        self._journal.start()
        self._http.start()

    def stop(self) -> None:
        """Blocking (up to a fraction of a second, or one refresh): call it off the
        event loop."""
        self._http.stop()
        self._journal.stop()
