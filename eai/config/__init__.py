"""routes.yaml: typed model, loading with file:line errors, JSON Schema.

Touches: files (``load_config`` reads the file), the environment (``${NAME}``).

``load_config`` / ``check_config`` give a :class:`Config` or every issue as
``routes.yaml:LINE:COL: <path>: <problem>``; ``config_json_schema`` describes
the file for the connectors registered. A connector's model-level check can
raise ``PydanticCustomError(type, msg, {"key": "<yaml key>", ...})`` to have
the issue point at that key rather than at the whole mapping.
"""

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
from eai.config._dicom import Coercion, DicomTag, is_uid, parse_tag
from eai.config._engine import EngineConfig
from eai.config._identity import IdentityConfig, IdentityServerConfig, SmtpConfig
from eai.config._loader import check_config, load_config, load_config_text
from eai.config._model import Config, config_model
from eai.config._routes import HL7Path, MessageTypePattern, MessageTypeSet, Route, When
from eai.config._schema import config_json_schema

__all__ = [
    "Coercion",
    "Config",
    "DestinationConfig",
    "DicomTag",
    "Duration",
    "EngineConfig",
    "HL7Path",
    "IdentityConfig",
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
    "is_uid",
    "load_config",
    "load_config_text",
    "parse_tag",
    "parse_duration",
]
