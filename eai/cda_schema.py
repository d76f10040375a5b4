"""Validates a CDA ``ClinicalDocument`` against the CDA R2 XML schema (``CDA_extended.xsd``).

Touches: files (reads the XSD and the files it includes, once per path).

The schema is compiled once per path and cached for the life of the process;
validation takes a lock because an lxml ``XMLSchema`` keeps its error log on
the instance. The XSD includes its sibling files by relative path, so it is
loaded from its own path (never copied). Error messages keep libxml2's text
and line numbers but never a value from the document: the literal values
libxml2 quotes (``The value '...'``) are redacted, since they may be patient
data and reasons are stored in clear and logged.

Where the schema is looked for: a listener's ``cda_schema`` setting (a
relative path is taken from the engine's working directory, as ``data_dir``
is); unset, :func:`default_schema_path`: the national fixtures checked out
beside the repository, ``<repo>/../shared/fixtures/xsd/infrastructure/cda/
CDA_extended.xsd``, found from where the ``eai`` package is installed, so it
does not depend on the working directory.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from eai.errors import ConfigError, ConfigIssue

__all__ = [
    "DEFAULT_SCHEMA_RELATIVE",
    "CdaSchema",
    "SchemaIssue",
    "default_schema_path",
    "load_schema",
]

DEFAULT_SCHEMA_RELATIVE = Path("shared/fixtures/xsd/infrastructure/cda/CDA_extended.xsd")
"""Where the schema sits relative to the directory that holds the repository."""

MAX_ISSUES = 10
"""How many schema errors a rejection reports (the first ones, in document order)."""

_MAX_MESSAGE = 300
_LITERAL_PATTERNS = (
    re.compile(r"The value '[^']*'"),
    re.compile(r"'[^']*'(?= is not a valid value)"),
    re.compile(r"'[^']*'(?= is not accepted)"),
)


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One schema error: the line in the validated document and libxml2's message."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def default_schema_path() -> Path:
    """``<dir holding the repo>/shared/fixtures/xsd/infrastructure/cda/CDA_extended.xsd``."""
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / DEFAULT_SCHEMA_RELATIVE


class CdaSchema:
    """A compiled CDA schema; :meth:`validate` returns the first errors (empty: valid)."""

    def __init__(self, path: Path, schema: etree.XMLSchema) -> None:
        self.path = path
        self._schema = schema
        self._lock = threading.Lock()

    def validate(self, document: etree._Element, limit: int = MAX_ISSUES) -> list[SchemaIssue]:
        """Validates ``document`` (a ``ClinicalDocument`` element, root or nested)."""
        with self._lock:
            if self._schema.validate(document):
                return []
            errors = list(self._schema.error_log)
        return [SchemaIssue(e.line, _redact(e.message)) for e in errors[:limit]]

    def __repr__(self) -> str:
        return f"CdaSchema({str(self.path)!r})"


_cache: dict[Path, CdaSchema] = {}
_cache_lock = threading.Lock()


def load_schema(path: Path | None = None) -> CdaSchema:
    """The compiled schema at ``path`` (default :func:`default_schema_path`), cached.

    Raises :class:`ConfigError` (naming the file) when it is missing or does
    not compile.
    """
    resolved = (path if path is not None else default_schema_path()).resolve()
    with _cache_lock:
        cached = _cache.get(resolved)
        if cached is not None:
            return cached
        if not resolved.is_file():
            raise _issue(resolved, "CDA schema not found (set cda_schema to the CDA_extended.xsd)")
        parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False)
        try:
            schema = etree.XMLSchema(etree.parse(str(resolved), parser))
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
            raise _issue(resolved, f"cannot load the CDA schema: {exc}") from exc
        compiled = _cache[resolved] = CdaSchema(resolved, schema)
        return compiled


def _redact(message: str) -> str:
    for pattern in _LITERAL_PATTERNS:
        message = pattern.sub(lambda m: _blank(m.group(0)), message)
    message = message.strip()
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _blank(text: str) -> str:
    prefix = "The value " if text.startswith("The value ") else ""
    return f"{prefix}'(value withheld)'"


def _issue(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file=str(path), line=0, column=0, message=message)])
