"""Loads ``routes.yaml`` into a :class:`Config`, or reports every problem with file:line:column.

Touches: files (reads the config file), the process environment (``${NAME}``).

Steps, each adding to one list of issues so that a run shows them all:
compose the YAML (syntax), substitute ``${NAME:-default}`` in scalar nodes,
find duplicate keys, construct plain data, validate it with the model built
from the registry, run the cross checks on the plain data (so they run even
when validation fails elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode

from eai.config._issues import findings_from_validation, locate
from eai.config._model import Config, config_model, cross_check
from eai.config._yaml import (
    Finding,
    compose,
    construct,
    find_duplicate_keys,
    format_path,
    position,
    substitute_env,
)
from eai.errors import ConfigError, ConfigIssue

__all__ = ["check_config", "load_config", "load_config_text"]

_EXPECTED = "expected a mapping with engine, listeners, destinations, routes"


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate ``path``; raise ConfigError listing every issue.

    ``env`` (default ``os.environ``) gives the ``${NAME}`` values.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigIssue(str(path), 1, 1, f"cannot read the file: {reason}")]
        ) from exc
    return load_config_text(text, str(path), env)


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


def _load(text: str, env: Mapping[str, str]) -> tuple[list[Finding], Config | None]:
    try:
        root = compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return [Finding(line, column, f"invalid YAML: {problem}")], None
    except yaml.YAMLError as exc:
        return [Finding(1, 1, f"invalid YAML: {exc}")], None
    if root is None:
        return [Finding(1, 1, f"the file is empty: {_EXPECTED}")], None
    if not isinstance(root, MappingNode):
        return [Finding(1, 1, f"the top level is not a mapping: {_EXPECTED}")], None

    unresolved = substitute_env(root, env, text)
    findings = [finding for _, finding in unresolved]
    findings += find_duplicate_keys(root)
    try:
        data = construct(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return [*findings, Finding(line, column, f"invalid YAML: {exc.problem}")], None

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
