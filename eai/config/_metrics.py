"""The ``metrics:`` section of ``routes.yaml``: where ``/metrics``, ``/livez``, ``/readyz`` listen.

Touches: nothing.
"""

from __future__ import annotations

from pydantic import Field

from eai.model import Duration, Model
from eai.net import BindAddress

__all__ = ["DEFAULT_METRICS_BIND", "MetricsConfig"]

DEFAULT_METRICS_BIND = "127.0.0.1:9464"


class MetricsConfig(Model):
    """The supervision endpoint (off when the section is absent; ``metrics: {}`` serves it
    on the default loopback address)."""

    bind: BindAddress = Field(
        default=DEFAULT_METRICS_BIND,
        description="address and port of /metrics (Prometheus text format), /livez and "
        "/readyz, host:port; keep it on loopback or a supervision network (the counters "
        "carry no patient data, but name the flows)",
        examples=[DEFAULT_METRICS_BIND, "10.0.5.12:9464"],
    )
    ready_timeout: Duration = Field(
        default=2.0,
        gt=0,
        le=30,
        description="/readyz answers 503 when the journal's test write, or the engine's "
        "event loop, does not answer within this",
        examples=["2s"],
    )
    gauge_refresh: Duration = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="how often a background thread reads the journal's gauges (queue "
        "depth and age, dead letters, backlog, alerts firing); a scrape serves the last "
        "values and never waits on the database (eai_metrics_gauges_age_seconds)",
        examples=["5s", "15s"],
    )
