"""Find, read and compile the mapping files shipped in ``mappings/`` (cached per process).

Touches: files (reads ``mappings/*.yaml`` and their tables).
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import ValidationError

from eai.errors import ConfigError, ConfigIssue, NotFound
from mappings._compile import CompiledMapping, compile_mapping
from mappings._model import MappingFile
from mappings._yamlpos import read_yaml

__all__ = [
    "MAPPINGS_DIR",
    "available_mappings",
    "clear_cache",
    "load_mapping",
    "load_mapping_file",
    "mapping_path",
]

MAPPINGS_DIR = Path(__file__).resolve().parent
_TESTS_SUFFIX = ".tests.yaml"


def available_mappings(directory: Path = MAPPINGS_DIR) -> list[str]:
    """The names of the mapping files in ``directory`` (tests files excluded)."""
    return sorted(
        p.name.removesuffix(".yaml")
        for p in directory.glob("*.yaml")
        if not p.name.endswith(_TESTS_SUFFIX)
    )


def mapping_path(name: str, directory: Path = MAPPINGS_DIR) -> Path:
    """The file of mapping ``name``; NotFound when there is none."""
    if name in available_mappings(directory):
        return directory / f"{name}.yaml"
    known = ", ".join(available_mappings(directory)) or "none"
    raise NotFound(f"no mapping named {name!r} (available: {known})")


@functools.cache
def load_mapping(name: str) -> CompiledMapping:
    """The compiled mapping ``name`` from ``mappings/``; NotFound or ConfigError."""
    return load_mapping_file(mapping_path(name))


def clear_cache() -> None:
    load_mapping.cache_clear()


def load_mapping_file(path: Path) -> CompiledMapping:
    """Read, validate and compile one mapping file; ConfigError lists every problem."""
    import mappings.functions  # noqa: F401 - registers the functions a mapping may name

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), 1, 1, f"cannot read the file: {exc}")]) from exc
    doc = read_yaml(text, str(path))
    try:
        spec = MappingFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(doc.validation_issues(exc)) from None
    return compile_mapping(doc, spec, path.parent)
