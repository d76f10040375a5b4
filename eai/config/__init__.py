"""routes.yaml: typed model, loading with file:line errors, JSON Schema.

Touches: files (``load_config`` reads the file), the environment (``${NAME}``).

``load_config`` / ``check_config`` give a :class:`Config` or every issue as
``routes.yaml:LINE:COL: <path>: <problem>``; ``config_json_schema`` describes
the file for the connectors registered. A connector's model-level check can
raise ``PydanticCustomError(type, msg, {"key": "<yaml key>", ...})`` to have
the issue point at that key rather than at the whole mapping. Plugins add
``when`` conditions, route keys and cross-checks through :mod:`eai.registry`;
:func:`route_model` / :func:`when_model` are the models with them.
"""

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
from eai.config._engine import EngineConfig
from eai.config._exposure import INSECURE_HINT, ExposureRule, exposure_check, is_loopback
from eai.config._identity import IdentityConfig, IdentityServerConfig, SmtpConfig
from eai.config._loader import check_config, load_config, load_config_text, load_engine_config
from eai.config._metrics import MetricsConfig
from eai.config._model import Config, config_model, route_model, when_model
from eai.config._raw import listed
from eai.config._routes import Route, When
from eai.config._schema import config_json_schema

__all__ = [
    "ALERT_RULES",
    "AlertRule",
    "AlertsConfig",
    "AuditConfig",
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
    "MetricsConfig",
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
