"""The JSON Schema of ``routes.yaml``, for editors and generated docs (``eai schema``).

Touches: nothing.

Built from :func:`config_model`, so it describes the registered connectors.
Numbers, booleans and patterned strings also accept a string holding a
``${NAME}`` reference, because the loader substitutes those before typing.
"""

from __future__ import annotations

from typing import Any

from eai.config._model import config_model

__all__ = ["config_json_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ENV_REFERENCE: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${NAME} or ${NAME:-default}, replaced from the environment when loading",
}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_META = ("title", "description", "default", "examples")


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the whole file, as a JSON-ready dict."""
    schema = config_model().model_json_schema(by_alias=True, mode="validation")
    schema = _allow_env(schema)
    schema.setdefault("$defs", {})["EnvReference"] = _ENV_REFERENCE
    return {
        "$schema": _DIALECT,
        "title": "eai routes.yaml",
        "description": "Listeners, destinations and routes of the eai interoperability engine.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def _allow_env(schema: dict[str, Any]) -> dict[str, Any]:
    """Let typed scalars also take a ``${NAME}`` string."""
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _allow_env(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_allow_env(sub) if isinstance(sub, dict) else sub for sub in out[key]]
    for key in _SCHEMA_ONE:
        if isinstance(out.get(key), dict):
            out[key] = _allow_env(out[key])
    kind = out.get("type")
    if kind in ("integer", "number", "boolean") or (kind == "string" and "pattern" in out):
        meta = {k: out.pop(k) for k in _META if k in out}
        return {"anyOf": [out, {"$ref": "#/$defs/EnvReference"}], **meta}
    return out
