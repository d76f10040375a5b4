"""Loads ``routes.yaml`` into a :class:`Config`, or reports every problem with file:line:column.

Touches: files (reads the config file), the process environment (``${NAME}``).

Steps, each adding to one list of issues so that a run shows them all:
compose the YAML (syntax), substitute ``${NAME:-default}`` in scalar nodes,
find duplicate keys, construct plain data, validate it with the model built
from the registry, run the cross checks on the plain data (so they run even
when validation fails elsewhere).

Validation first loads only the plugins of the ``type:`` values the file names
(:func:`eai.plugins.modules_for`: ``eai check`` of an MLLP-only file imports no pydicom,
httpx or signxml). A plugin adds types, keys and checks of its own types only, so a file
valid with those plugins is valid with all; a file with any finding is validated again
with every plugin loaded, so its findings (and "did you mean" hints) are those of the
whole registry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from yaml.nodes import MappingNode, Node

from eai import plugins
from eai.config._base import Model
from eai.config._engine import EngineConfig
from eai.config._issues import findings_from_validation, locate
from eai.config._model import Config, config_model, cross_check
from eai.config._raw import listed
from eai.config._yaml import (
    Finding,
    compose,
    construct,
    find_duplicate_keys,
    format_path,
    mapping_item,
    position,
    substitute_env,
)
from eai.config._yaml_errors import explain
from eai.errors import ConfigError, ConfigIssue

__all__ = ["check_config", "load_config", "load_config_text", "load_engine_config"]

_EXPECTED = "expected a mapping with engine, listeners, destinations, routes"


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate ``path``; raise ConfigError listing every issue.

    ``env`` (default ``os.environ``) gives the ``${NAME}`` values.
    """
    path = Path(path)
    return load_config_text(_read(path), str(path), env)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigIssue(str(path), 1, 1, f"cannot read the file: {reason}")]
        ) from exc


class _EngineSection(Model):
    """A ``routes.yaml`` reduced to its ``engine`` section."""

    engine: EngineConfig = Field(
        default_factory=EngineConfig, description="process-wide settings (all defaulted)"
    )


def load_engine_config(path: Path | str, env: Mapping[str, str] | None = None) -> EngineConfig:
    """The ``engine`` section of ``path`` alone, or ConfigError with its issues (the file's
    YAML syntax, that section's values and ``${NAME}``s).

    For the commands that only open the journal (``eai messages list``): no connector is
    imported to read it, and a mistake elsewhere in the file (a route, a listener) does
    not keep a support engineer from reading the journal."""
    path = Path(path)
    text = _read(path)
    findings: list[Finding] = []
    section: EngineConfig | None = None
    root = _compose(text)
    if isinstance(root, Finding):
        findings.append(root)
    else:
        item = mapping_item(root, "engine")
        only = MappingNode(root.tag, [item] if item else [], root.start_mark, root.end_mark)
        findings += [
            finding for _, finding in substitute_env(only, os.environ if env is None else env, text)
        ]
        findings += find_duplicate_keys(only)
        try:
            data = construct(only)
            section = _EngineSection.model_validate(data).engine
        except yaml.YAMLError as exc:
            findings.append(explain(exc, text))
        except ValidationError as exc:
            findings += findings_from_validation(exc, only, _EngineSection)
    if findings or section is None:
        unique = sorted(dict.fromkeys(findings), key=lambda f: (f.line, f.column))
        raise ConfigError([ConfigIssue(str(path), f.line, f.column, f.message) for f in unique])
    return section


def check_config(path: Path | str, env: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Every issue in ``path``, in file order; an empty list when it is valid."""
    try:
        load_config(path, env)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def load_config_text(
    text: str, filename: str = "routes.yaml", env: Mapping[str, str] | None = None
) -> Config:
    """:func:`load_config` on text already read; ``filename`` is used in issues."""
    findings, config = _load(text, os.environ if env is None else env)
    if findings or config is None:
        unique = sorted(dict.fromkeys(findings), key=lambda f: (f.line, f.column))
        raise ConfigError([ConfigIssue(filename, f.line, f.column, f.message) for f in unique])
    return config


def _compose(text: str) -> MappingNode | Finding:
    """The document's top-level mapping, or the finding that says why there is none."""
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        return explain(exc, text)
    if root is None:
        return Finding(1, 1, f"the file is empty: {_EXPECTED}")
    if not isinstance(root, MappingNode):
        return Finding(1, 1, f"the top level is not a mapping: {_EXPECTED}")
    return root


def _load(text: str, env: Mapping[str, str]) -> tuple[list[Finding], Config | None]:
    root = _compose(text)
    if isinstance(root, Finding):
        return [root], None

    unresolved = substitute_env(root, env, text)
    findings = [finding for _, finding in unresolved]
    findings += find_duplicate_keys(root)
    try:
        data = construct(root)
    except yaml.YAMLError as exc:
        return [*findings, explain(exc, text)], None

    if not findings:
        modules = _plugins_named(data)
        if modules is not None:
            with plugins.only(modules):
                scoped, config = _validate(root, data, unresolved)
            if config is not None and not scoped:
                return scoped, config
    more, config = _validate(root, data, unresolved)
    return [*findings, *more], config


def _plugins_named(data: Any) -> list[str] | None:
    """The plugin modules the file's listener and destination types need (None: all of
    them, when a type is missing, not a string, or unknown)."""
    if not isinstance(data, Mapping):
        return None
    types: dict[str, list[str]] = {"listeners": [], "destinations": []}
    for section, found in types.items():
        for item in listed(data.get(section)):
            kind = item.get("type") if isinstance(item, Mapping) else None
            if not isinstance(kind, str):
                return None
            found.append(kind)
    return plugins.modules_for(types["listeners"], types["destinations"])


def _validate(
    root: MappingNode, data: Any, unresolved: list[tuple[Node, Finding]]
) -> tuple[list[Finding], Config | None]:
    """Cross checks and validation with the model of the plugins loaded now."""
    findings: list[Finding] = []
    model = config_model()
    problems = cross_check(data)
    for loc, message in problems:
        where = locate(root, loc, model)
        line, column = position(where.node)
        findings.append(Finding(line, column, f"{format_path(where.path)}: {message}"))
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        # the cross checks ran above with positions; skip their model-level echo
        skip = frozenset({"config_reference"}) if problems else frozenset()
        reported = frozenset(id(node) for node, _ in unresolved)
        findings += findings_from_validation(exc, root, model, skip, reported)
        return findings, None
    return findings, config
