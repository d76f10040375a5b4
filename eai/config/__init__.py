"""routes.yaml: typed model, loading with file:line errors, JSON Schema.

Touches: files (``load_config`` reads the file), the environment (``${NAME}``).

``load_config`` / ``check_config`` give a :class:`Config` or every issue as
``routes.yaml:LINE:COL: <path>: <problem>``; ``config_json_schema`` describes
the file for the connectors registered. A connector's model-level check can
raise ``PydanticCustomError(type, msg, {"key": "<yaml key>", ...})`` to have
the issue point at that key rather than at the whole mapping. Plugins add
``when`` conditions, route keys and cross-checks through :mod:`eai.registry`;
:func:`route_model` / :func:`when_model` are the models with them.

Imported lazily (PEP 562): ``import eai.config`` loads nothing, and a name is imported
from its module when first asked for. :func:`journal_location` (where the journal is,
read with YAML alone) and :func:`listed` load no model; every other name loads the models
(and with them the core's ``when:`` keys and the CDA message kind, registered on import),
as importing this package did before. A new export goes in :data:`_EXPORTS`, and in the
``TYPE_CHECKING`` imports for the type checker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eai.config._alerts import ALERT_RULES, AlertRule, AlertsConfig
    from eai.config._alerts import IdentityServer as IdentityServerAlertRule
    from eai.config._audit import AuditConfig, SyslogConfig
    from eai.config._base import (
        DestinationConfig,
        Duration,
        ListenerConfig,
        Model,
        RetryPolicy,
        TlsClientConfig,
        TlsServerConfig,
        parse_duration,
    )
    from eai.config._conditions import HL7Path, MessageTypePattern, MessageTypeSet
    from eai.config._console import ConsoleConfig
    from eai.config._engine import EngineConfig
    from eai.config._exposure import INSECURE_HINT, ExposureRule, exposure_check, is_loopback
    from eai.config._identity import IdentityConfig, IdentityServerConfig, SmtpConfig
    from eai.config._journal import JournalLocation, journal_location
    from eai.config._loader import check_config, load_config, load_config_text, load_engine_config
    from eai.config._metrics import MetricsConfig
    from eai.config._model import Config, config_model, route_model, when_model
    from eai.config._raw import listed
    from eai.config._routes import Route, When
    from eai.config._schema import config_json_schema

__all__ = [
    "journal_location",
    "JournalLocation",
    "ALERT_RULES",
    "AlertRule",
    "AlertsConfig",
    "AuditConfig",
    "ConsoleConfig",
    "MetricsConfig",
    "SyslogConfig",
    "Config",
    "DestinationConfig",
    "Duration",
    "EngineConfig",
    "ExposureRule",
    "INSECURE_HINT",
    "HL7Path",
    "IdentityConfig",
    "IdentityServerAlertRule",
    "IdentityServerConfig",
    "ListenerConfig",
    "MessageTypePattern",
    "MessageTypeSet",
    "Model",
    "RetryPolicy",
    "Route",
    "SmtpConfig",
    "TlsClientConfig",
    "TlsServerConfig",
    "When",
    "check_config",
    "config_json_schema",
    "config_model",
    "exposure_check",
    "is_loopback",
    "listed",
    "load_config",
    "load_config_text",
    "load_engine_config",
    "parse_duration",
    "route_model",
    "when_model",
]

_EXPORTS: dict[str, tuple[str, str]] = {
    "ALERT_RULES": ("eai.config._alerts", "ALERT_RULES"),
    "AlertRule": ("eai.config._alerts", "AlertRule"),
    "AlertsConfig": ("eai.config._alerts", "AlertsConfig"),
    "AuditConfig": ("eai.config._audit", "AuditConfig"),
    "MetricsConfig": ("eai.config._metrics", "MetricsConfig"),
    "ConsoleConfig": ("eai.config._console", "ConsoleConfig"),
    "Config": ("eai.config._model", "Config"),
    "DestinationConfig": ("eai.config._base", "DestinationConfig"),
    "Duration": ("eai.config._base", "Duration"),
    "EngineConfig": ("eai.config._engine", "EngineConfig"),
    "ExposureRule": ("eai.config._exposure", "ExposureRule"),
    "HL7Path": ("eai.config._conditions", "HL7Path"),
    "INSECURE_HINT": ("eai.config._exposure", "INSECURE_HINT"),
    "IdentityConfig": ("eai.config._identity", "IdentityConfig"),
    "IdentityServerAlertRule": ("eai.config._alerts", "IdentityServer"),
    "IdentityServerConfig": ("eai.config._identity", "IdentityServerConfig"),
    "JournalLocation": ("eai.config._journal", "JournalLocation"),
    "ListenerConfig": ("eai.config._base", "ListenerConfig"),
    "MessageTypePattern": ("eai.config._conditions", "MessageTypePattern"),
    "MessageTypeSet": ("eai.config._conditions", "MessageTypeSet"),
    "Model": ("eai.config._base", "Model"),
    "RetryPolicy": ("eai.config._base", "RetryPolicy"),
    "Route": ("eai.config._routes", "Route"),
    "SmtpConfig": ("eai.config._identity", "SmtpConfig"),
    "SyslogConfig": ("eai.config._audit", "SyslogConfig"),
    "TlsClientConfig": ("eai.config._base", "TlsClientConfig"),
    "TlsServerConfig": ("eai.config._base", "TlsServerConfig"),
    "When": ("eai.config._routes", "When"),
    "check_config": ("eai.config._loader", "check_config"),
    "config_json_schema": ("eai.config._schema", "config_json_schema"),
    "config_model": ("eai.config._model", "config_model"),
    "exposure_check": ("eai.config._exposure", "exposure_check"),
    "is_loopback": ("eai.config._exposure", "is_loopback"),
    "journal_location": ("eai.config._journal", "journal_location"),
    "listed": ("eai.config._raw", "listed"),
    "load_config": ("eai.config._loader", "load_config"),
    "load_config_text": ("eai.config._loader", "load_config_text"),
    "load_engine_config": ("eai.config._loader", "load_engine_config"),
    "parse_duration": ("eai.config._base", "parse_duration"),
    "route_model": ("eai.config._model", "route_model"),
    "when_model": ("eai.config._model", "when_model"),
}
"""Each exported name -> (the module that defines it, its name there)."""

_LIGHT = frozenset({"JournalLocation", "journal_location", "listed"})
"""Names whose module imports no model (nor pydantic)."""


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'eai.config' has no attribute {name!r}")
    if name not in _LIGHT:
        importlib.import_module("eai.config._model")  # registers the core's when: keys
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
