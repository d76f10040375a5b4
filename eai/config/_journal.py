"""Where the journal is, read from ``routes.yaml`` without the config models.

Touches: files (reads the config file), the process environment (``${NAME}``).

``eai messages list`` (and the other commands that only read the journal) need two
values of the ``engine`` section: ``database`` and ``data_dir``. Reading them with YAML
alone spares pydantic and every model (a third of that command's start-up). The light
reading answers only for the plain case, an ``engine`` section holding at most those two
keys as strings after ``${NAME}`` substitution, with no duplicate key; anything else
(another key, a wrong value, a YAML error, an unset variable) is left to
:func:`eai.config.load_engine_config`, which validates the section and reports its
issues at ``FILE:LINE:COL``, exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode

from eai.config._yaml import compose, construct, find_duplicate_keys, mapping_item, substitute_env

__all__ = ["DATABASE_SCHEMES", "DEFAULT_DATA_DIR", "JournalLocation", "journal_location"]

DEFAULT_DATA_DIR = "./var"
"""``engine.data_dir`` when it is not given (:class:`eai.config.EngineConfig`'s default)."""

DATABASE_SCHEMES = ("sqlite:///", "postgresql+psycopg://")
"""The journal URLs :class:`eai.config.EngineConfig` accepts."""

_KEYS = frozenset({"data_dir", "database"})


def default_database(data_dir: str) -> str:
    """``engine.database`` when it is not given: ``sqlite:///<data_dir>/eai.db``."""
    return f"sqlite:///{data_dir.rstrip('/') or '.'}/eai.db"


@dataclass(frozen=True, slots=True)
class JournalLocation:
    """The journal's URL and data directory (key file, lock), as ``EngineConfig`` has them."""

    database: str
    data_dir: Path

    def __repr__(self) -> str:
        return f"JournalLocation(database=<hidden>, data_dir={str(self.data_dir)!r})"


def journal_location(path: Path, env: Mapping[str, str] | None = None) -> JournalLocation | None:
    """``database`` and ``data_dir`` of the config at ``path`` when its ``engine`` section
    is plain (see the module's docstring); None to have it validated instead. Raises
    OSError and UnicodeDecodeError as reading the file does."""
    text = path.read_text(encoding="utf-8")
    try:
        root = compose(text)
        if not isinstance(root, MappingNode):
            return None
        item = mapping_item(root, "engine")
        only = MappingNode(root.tag, [item] if item else [], root.start_mark, root.end_mark)
        if substitute_env(only, os.environ if env is None else env, text):
            return None
        if find_duplicate_keys(only):
            return None
        section = construct(only).get("engine", {})
    except yaml.YAMLError:
        return None
    if not isinstance(section, dict) or not set(section) <= _KEYS:
        return None
    data_dir = section.get("data_dir", DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir:
        return None
    database = section.get("database", default_database(data_dir))
    if not (
        isinstance(database, str)
        and database.startswith(DATABASE_SCHEMES)
        and database not in DATABASE_SCHEMES
    ):
        return None
    return JournalLocation(database, Path(data_dir))
