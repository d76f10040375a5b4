"""Declarative mappings (YAML) from HL7 v2 and CDA to FHIR R4, and their tests.

Touches: files (reads mapping files, their tables and tests).

Messages that no mapping changes are forwarded byte for byte as received.

- :func:`convert`: payload -> FHIR ``Bundle`` (type ``collection``) as JSON,
  checked against the ``fhir.resources.R4B`` models; :class:`eai.errors.InputError`
  (one line, no patient data) when the input cannot be mapped;
- :func:`load_mapping`, :func:`available_mappings`, :func:`default_mapping_for`
  (``map: auto`` in routes.yaml), :func:`clear_caches` (a reload forgets what was read);
- :func:`mapping_function`: registers the Python functions a mapping names;
- :func:`bundle_warnings`: the warnings a mapping left in a Bundle (``meta.tag``
  ``urn:eai:mapping-flag``), which the pipeline records in the message's journey;
- :func:`run_mapping_tests`: the ``<name>.tests.yaml`` cases (``eai mapping test``).

The language is specified in ``docs/mappings.md``; the flow is
``_loader`` (files) -> ``_model`` (shape) -> ``_compile`` (closures, with the
source kind of ``_source``/``_hl7v2``, the element writer of ``_fhirpath``,
``_transforms``, ``_registry``) -> run (``_context``) -> ``_validate``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from eai.errors import ConfigError, InputError
from mappings._cases import CaseResult, read_tests, run_case, run_cases, tests_files
from mappings._compile import CompiledMapping as Mapping
from mappings._context import MappingContext, MappingFailure
from mappings._loader import available_mappings, load_mapping
from mappings._registry import mapping_function
from mappings._validate import Level, bundle_problems
from mappings._warnings import bundle_warnings

__all__ = [
    "AUTO",
    "CaseResult",
    "Mapping",
    "MappingContext",
    "available_mappings",
    "bundle_warnings",
    "clear_caches",
    "convert",
    "default_mapping_for",
    "load_mapping",
    "mapping_function",
    "read_tests",
    "run_mapping_case",
    "run_mapping_tests",
    "tests_files",
]

AUTO = "auto"

log = logging.getLogger(__name__)


def convert(
    payload: bytes,
    content_type: str = "hl7v2",
    mapping: str | None = None,
    *,
    parsed: object = None,
    validation: Level = "full",
) -> dict[str, Any]:
    """The FHIR Bundle (JSON) that ``mapping`` makes of ``payload``.

    ``mapping`` None or ``"auto"``: the mapping whose ``default_for`` takes the
    message (:func:`default_mapping_for`). ``parsed`` is what the content
    parser already made of ``payload`` (the pipeline passes it to avoid a
    second parse). Raises InputError when nothing maps the input, when it
    cannot be read, when a rule fails or when the result is not valid FHIR;
    NotFound for an unknown mapping name; ConfigError for a broken mapping file.
    """
    if mapping is None or mapping == AUTO:
        routable = parsed if parsed is not None else _routable(payload, content_type)
        chosen = default_mapping_for(content_type, routable)
        if chosen is None:
            kind = _message_type(routable) or content_type
            raise InputError(f"no mapping takes {kind} ({content_type}): name one with --mapping")
        mapping = chosen
    compiled = load_mapping(mapping)
    source = compiled.source
    if source.content_type != content_type:
        raise InputError(f"mapping {mapping} reads {source.content_type}, not {content_type}")
    document = source.from_routable(parsed) if parsed is not None else None
    if document is None:
        document = source.parse(payload)
    try:
        bundle = compiled.run(document)
    except MappingFailure as exc:
        raise InputError(f"mapping {mapping}: {exc}") from None
    problems = bundle_problems(bundle, validation)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"mapping {mapping}: invalid FHIR: {problems[0]}{more}")
    return bundle


def default_mapping_for(content_type: str, routable: object) -> str | None:
    """The mapping a route with ``map: auto`` applies to this message, or None.

    The first mapping, by name, reading ``content_type`` whose ``default_for``
    takes the message, asked in this order: the message type (HL7 v2 MSH-9
    patterns; CDA document code), then, for a CDA, templateIds anywhere in it
    (``content_template_id``: a document, section or entry template the mapping
    knows how to map, e.g. the lab results of a rapid test report whose code is
    not 11502-2), then the document's own templateIds (``template_id``).
    """
    message_type = _message_type(routable)
    chosen = _default_by_type(content_type, message_type)
    if chosen is not None:
        return chosen
    for compiled in _loadable():
        if compiled.source.content_type == content_type and compiled.content_template_ids:
            if _has_template(routable, compiled.content_template_ids, anywhere=True):
                return compiled.name
    for compiled in _loadable():
        if compiled.source.content_type == content_type and compiled.template_ids:
            if _has_template(routable, compiled.template_ids):
                return compiled.name
    return None


@functools.lru_cache(maxsize=256)
def _default_by_type(content_type: str, message_type: str) -> str | None:
    for compiled in _loadable():
        if compiled.source.content_type == content_type and compiled.takes(message_type):
            return compiled.name
    return None


def _loadable() -> list[Mapping]:
    """Every mapping that loads; a broken file is skipped with a warning (``eai
    mapping test`` and ``eai check`` of a route naming it report its errors)."""
    out = []
    for name in available_mappings():
        try:
            out.append(load_mapping(name))
        except ConfigError as exc:
            log.warning("mapping %s skipped for map: auto, it has errors: %s", name, exc.issues[0])
    return out


def _has_template(
    routable: object, template_ids: tuple[str, ...], *, anywhere: bool = False
) -> bool:
    """True when the document (its header; ``anywhere``: any element) has one of the ids."""
    get = getattr(routable, "get", None)
    if get is None:
        return False
    where = "(//hl7:templateId" if anywhere else "(hl7:templateId"
    for tid in template_ids:
        try:
            if get(f"{where}[@root='{tid}'])[1]/@root") == tid:
                return True
        except ValueError:
            return False
    return False


def _message_type(routable: object) -> str:
    header = getattr(routable, "header", None)
    return str(getattr(header, "message_type", "") or "")


def _routable(payload: bytes, content_type: str) -> object:
    from eai.content import content_parser

    parser = content_parser(content_type)
    if parser is None:
        raise InputError(f"no parser for content type {content_type}")
    return parser(payload, None).routable


def clear_caches() -> None:
    """Forget the compiled mappings and the ``map: auto`` choices made from their
    ``default_for`` (a reload: files edited, added or removed are read again on next use)."""
    load_mapping.cache_clear()
    _default_by_type.cache_clear()


def run_mapping_tests(name: str | None = None) -> list[CaseResult]:
    """Run the cases of ``mappings/<name>.tests.yaml`` (every tests file when None)."""
    if name is not None:
        load_mapping(name)  # NotFound for an unknown name, ConfigError for a broken file
    results: list[CaseResult] = []
    for path in tests_files(name):
        results += run_cases(path, _convert_case, _content_type_of)
    return results


def run_mapping_case(path: Path, index: int) -> CaseResult:
    """Run one case of a tests file (what pytest parametrizes over)."""
    return run_case(path, index, _convert_case, _content_type_of)


def _convert_case(payload: bytes, content_type: str, mapping: str) -> dict[str, Any]:
    return convert(payload, content_type, mapping)


def _content_type_of(mapping: str) -> str:
    return load_mapping(mapping).source.content_type
