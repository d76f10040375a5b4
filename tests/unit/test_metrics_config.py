"""The ``metrics:`` section: off when absent, loopback by default, checked with its line,
kept until a restart by a reload."""

from __future__ import annotations

import pytest

from eai._reload import plan_reload
from eai.config import load_config_text
from eai.errors import ConfigError

BASE = "listeners: [{name: adt, type: mllp, bind: 127.0.0.1:2575}]\n"


def test_absent_means_not_served() -> None:
    assert load_config_text(BASE, env={}).metrics is None


def test_empty_section_serves_on_loopback() -> None:
    cfg = load_config_text(BASE + "metrics: {}\n", env={})
    assert cfg.metrics is not None
    assert cfg.metrics.bind == "127.0.0.1:9464"
    assert cfg.metrics.ready_timeout == 2.0


def test_bind_from_the_environment() -> None:
    text = BASE + "metrics:\n  bind: 127.0.0.1:${METRICS_PORT}\n  ready_timeout: 500ms\n"
    cfg = load_config_text(text, env={"METRICS_PORT": "9123"})
    assert cfg.metrics is not None
    assert (cfg.metrics.bind, cfg.metrics.ready_timeout) == ("127.0.0.1:9123", 0.5)


def test_bad_bind_is_reported_at_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(BASE + "metrics:\n  bind: localhost\n", "routes.yaml", env={})
    assert "routes.yaml:3:" in str(info.value)
    assert "metrics.bind" in str(info.value)


def test_unknown_key_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(BASE + "metrics: {port: 9464}\n", env={})
    assert "metrics.port" in str(info.value)


def test_a_reload_keeps_the_running_endpoint() -> None:
    old = load_config_text(BASE + "metrics: {bind: 127.0.0.1:9464}\n", env={})
    new = load_config_text(BASE + "metrics: {bind: 127.0.0.1:9465}\n", env={})
    plan = plan_reload(old, new)
    assert "metrics" in plan.restart_needed
    assert plan.config.metrics == old.metrics


def test_gauge_refresh_defaults_to_5s_and_is_bounded() -> None:
    cfg = load_config_text(BASE + "metrics: {gauge_refresh: 15s}\n", env={})
    assert cfg.metrics is not None and cfg.metrics.gauge_refresh == 15.0
    default = load_config_text(BASE + "metrics: {}\n", env={}).metrics
    assert default is not None and default.gauge_refresh == 5.0
    with pytest.raises(ConfigError) as info:
        load_config_text(BASE + "metrics: {gauge_refresh: 0s}\n", "routes.yaml", env={})
    assert "metrics.gauge_refresh" in str(info.value)
