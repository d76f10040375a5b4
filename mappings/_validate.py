"""Check that a produced Bundle is valid FHIR R4 (``fhir.resources.R4B`` models).

Touches: nothing.

Three levels, the same problems reported the same way (``Patient.birthDate:
not a FHIR date``; never a value, it may be patient data):

- ``full`` (the default): each entry's resource goes through its R4B model's
  ``model_validate`` (types, cardinalities, required elements, choice
  types, FHIR primitive formats as fhir.resources checks them);
- ``cached``: the verdict of ``full``, cheaper. Most of ``model_validate``'s
  time is fhir.resources' Python model validators (null list items, choice
  groups, required primitives), which read only the *shape* of a resource:
  its keys, list lengths, and the JSON type of each leaf (an empty string
  counts apart). A shape ``model_validate`` accepted once is remembered
  (per process, bounded); a resource of a known shape then only has its
  primitive values checked, each by the pydantic validator of its field in
  the same R4B model (the one ``model_validate`` runs on it). Any other shape
  goes through ``model_validate``. Tests feed both levels the same corrupted
  resources;
- ``light``: a walk of the JSON with the same element tables (unknown
  element, list or not, primitive type and format, required elements, one
  value per choice group), about ten times cheaper; ``bench/convert.py``
  compares the two.

Every level also checks the envelope: ``Bundle.type``, one ``fullUrl`` per entry,
``urn:uuid`` references that point inside the Bundle; and every ``system`` of type
``uri`` (Coding, Identifier, Quantity... anywhere in a resource, extensions
included) is an absolute URI, a ``urn:oid:`` holding a valid OID and a
``urn:uuid:`` a valid UUID: fhir.resources takes a bare OID
(``1.2.250.1.213.1.1.5.130``) as a ``uri``, FHIR does not (a system is a URI).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

from mappings._fhirmodel import Element, elements, resource_model

__all__ = ["Level", "bundle_problems", "system_problem"]

Level = Literal["full", "light", "cached"]

_DATE = r"([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?"
_ZONE = r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_FORMATS = {
    "date": re.compile(_DATE),
    "datetime": re.compile(rf"{_DATE}(T{_TIME}{_ZONE})?"),
    "instant": re.compile(rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T{_TIME}{_ZONE}"),
    "time": re.compile(_TIME),
    "code": re.compile(r"[^\s]+( [^\s]+)*"),
    "id": re.compile(r"[A-Za-z0-9\-.]{1,64}"),
    "uri": re.compile(r"\S*"),
    "url": re.compile(r"\S*"),
    "canonical": re.compile(r"\S*"),
    "oid": re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"),
    "uuid": re.compile(r"urn:uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"),
}
_UUID_URL = _FORMATS["uuid"]
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_OID_URN = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID_URN = re.compile(r"urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def bundle_problems(bundle: dict[str, Any], level: Level = "full") -> list[str]:
    """Every problem found in ``bundle`` (empty when valid)."""
    problems: list[str] = []
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "collection":
        problems.append("Bundle: resourceType Bundle and type collection expected")
    entries = bundle.get("entry") or []
    urls = {e.get("fullUrl") for e in entries if isinstance(e, dict)}
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(url, str):
            problems.append(f"Bundle.entry[{index}]: fullUrl and resource expected")
            continue
        if not _UUID_URL.fullmatch(url):
            problems.append(f"Bundle.entry[{index}].fullUrl: not a urn:uuid")
        rtype = str(resource.get("resourceType", ""))
        try:
            model = resource_model(rtype)
        except ValueError:
            problems.append(f"Bundle.entry[{index}]: unknown resourceType")
            continue
        key: tuple[str, str, Any] | None = None
        if level != "full":
            leaves: list[Any] = []
            key = (level, rtype, _flat(resource, leaves))
            plan = _PLANS.get(key)
            if plan is not None and plan.passes(leaves, urls):
                continue
        found = _resource_problems(model, resource, rtype, level, urls)
        if key is not None and not found:
            _remember(key, model, resource, level)
        problems += found
    return problems


def _resource_problems(
    model: type[BaseModel], resource: dict[str, Any], rtype: str, level: Level, urls: set[Any]
) -> list[str]:
    """Every problem of one resource, named (the slow path, and the only one for ``full``)."""
    if level == "full":
        problems = _model_problems(model, resource, rtype)
    elif level == "cached":
        problems = _cached_problems(model, resource, rtype)
    else:
        body = {k: v for k, v in resource.items() if k != "resourceType"}
        problems = _walk(model, body, rtype)
    # Fast passes first (no paths built): the walks that name the problems run only
    # when there is one to name.
    if _dangling(resource, urls):
        for path, reference in _references(resource, rtype):
            if reference.startswith("urn:uuid:") and reference not in urls:
                problems.append(f"{path}: reference to no entry of the Bundle")
    if not _systems_valid(model, resource):
        problems += _system_problems(model, resource, rtype)
    return problems


# Plans: what is left to check of a resource whose shape passed a level with no problem.
#
# Every verdict of ``light`` and ``cached`` on a resource is decided by its shape (keys,
# list lengths, JSON type of each leaf, empty strings: :func:`_flat`) except for the
# leaf values: the ``light`` formats, the pydantic validators of ``cached`` (as
# :func:`_cached_problems` runs them on a known shape), each ``system`` URI and each
# ``urn:uuid`` reference (which must name an entry of *this* Bundle). A shape that
# passed with no problem at all is remembered with the list of those value checks, by
# leaf position; a resource of that shape whose values all pass has no problem, and
# one of them failing sends the resource down the slow path, which names the problems
# in its own words and order. One walk of the resource (:func:`_flat`) instead of
# three or four.


class _Plan:
    """The value checks of one shape (see above), by position in :func:`_flat`'s leaves."""

    __slots__ = ("level", "checks", "systems", "references")

    def __init__(
        self,
        level: Level,
        checks: list[tuple[int, Any]],
        systems: list[int],
        references: list[int],
    ) -> None:
        self.level = level
        self.checks = tuple(checks)
        """``cached``: (validator raising ValidationError, texts it passed); ``light``: a
        function giving a false value when the format does not match."""
        self.systems = tuple(systems)
        self.references = tuple(references)

    def passes(self, leaves: list[Any], urls: set[Any]) -> bool:
        if self.level == "cached":
            try:
                for position, (validate, valid) in self.checks:
                    value = leaves[position]
                    if type(value) is str:
                        if value in valid:
                            continue
                        validate(value)
                        if len(value) <= _MAX_VALID_TEXT:
                            if len(valid) >= _MAX_VALID:
                                valid.clear()
                            valid.add(value)
                    else:
                        validate(value)
            except ValidationError:
                return False
        else:
            for position, matches in self.checks:
                if not matches(leaves[position]):
                    return False
        for position in self.systems:
            if system_problem(leaves[position]):
                return False
        for position in self.references:
            reference = leaves[position]
            if reference.startswith("urn:uuid:") and reference not in urls:
                return False
        return True


_PLANS: dict[tuple[str, str, Any], _Plan] = {}
_MAX_PLANS = 4096
_VALID: dict[TypeAdapter[Any], tuple[Any, set[str]]] = {}
_MAX_VALID = 1024  # texts remembered per field validator (codes, systems, units...)
_MAX_VALID_TEXT = 128  # longer texts (identifiers, narrative, data) are checked each time
_LIST_OF_LEAVES = "]"
_LIST = "["


def _flat(node: Any, leaves: list[Any]) -> Any:
    """The shape of ``node`` (as :func:`_shape`), its leaves appended to ``leaves`` in
    document order; a list holding no object or list is one leaf (a primitive element
    that repeats is validated whole)."""
    kind = type(node)
    if kind is dict:
        return tuple([(key, _flat(value, leaves)) for key, value in node.items()])
    if kind is list:
        for item in node:
            if type(item) is dict or type(item) is list:
                return (_LIST, tuple([_flat(item, leaves) for item in node]))
        leaves.append(node)
        return (
            _LIST_OF_LEAVES,
            tuple([_EMPTY_TEXT if type(item) is str and not item else type(item) for item in node]),
        )
    leaves.append(node)
    if kind is str and not node:
        return _EMPTY_TEXT
    return kind


def _remember(
    key: tuple[str, str, Any], model: type[BaseModel], resource: Any, level: Level
) -> None:
    checks: list[tuple[int, Any]] = []
    systems: list[int] = []
    references: list[int] = []
    if next(iter(resource)) != "resourceType":
        return  # leaf 0 is resourceType in every plan; another order keeps the slow path
    body = {k: v for k, v in resource.items() if k != "resourceType"}
    if _plan_walk(model, body, level, 1, checks, systems, references) is None:
        return
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = _Plan(level, checks, systems, references)


def _plan_walk(
    model: type[BaseModel],
    node: dict[str, Any],
    level: Level,
    position: int,
    checks: list[tuple[int, Any]],
    systems: list[int],
    references: list[int],
) -> int | None:
    """The value checks of ``node``'s leaves from ``position`` on (see :func:`_flat`);
    the position after them, or None when the tables cannot say (then no plan)."""
    known = elements(model)
    for name, value in node.items():
        element = known.get(name)
        if element is None:
            return None
        kind = type(value)
        if element.model is not None:
            items = value if kind is list else [value]
            if not items:
                return None
            for item in items:
                if type(item) is not dict:
                    return None
                after = _plan_walk(
                    element.model, item, level, position, checks, systems, references
                )
                if after is None:
                    return None
                position = after
            continue
        if kind is dict or (
            kind is list and any(type(i) is dict or type(i) is list for i in value)
        ):
            return None
        if level == "cached":
            adapter = _ADAPTERS.get((model, name))
            if adapter is None:
                adapter = _ADAPTERS[(model, name)] = _field_adapter(model, name)
            checks.append((position, _validator(adapter)))
        elif element.primitive not in ("boolean", "integer", "decimal"):
            pattern = _FORMATS.get(element.primitive)
            if pattern is not None:
                checks.append((position, _matcher(pattern, kind is list)))
        if name == "system" and element.primitive == "uri":
            systems.append(position)
        if name == "reference" and kind is str:
            references.append(position)
        position += 1
    return position


def _validator(adapter: TypeAdapter[Any]) -> tuple[Any, set[str]]:
    """The field's pydantic validator (``TypeAdapter.validate_python`` without its Python
    wrapper, same defaults) and the set of texts it passed: a validator gives the same
    verdict on the same text, so a code, system or unit seen before is not checked again."""
    found = _VALID.get(adapter)
    if found is None:
        validator = adapter.validator
        validate = (
            validator.validate_python
            if isinstance(validator, SchemaValidator)
            else adapter.validate_python
        )
        found = _VALID[adapter] = (validate, set())
    return found


def _matcher(pattern: re.Pattern[str], many: bool) -> Any:
    if not many:
        return pattern.fullmatch
    return lambda values: all(pattern.fullmatch(v) for v in values)


def _dangling(node: Any, urls: set[Any]) -> bool:
    """True when a ``urn:uuid:`` reference under ``node`` points to no entry (what
    :func:`_references` then names)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if value.startswith("urn:uuid:") and value not in urls:
                    return True
            elif isinstance(value, dict | list) and _dangling(value, urls):
                return True
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list) and _dangling(item, urls):
                return True
    return False


def _systems_valid(model: type[BaseModel], node: Any) -> bool:
    """False when :func:`_system_problems` would find a problem under ``node``."""
    if not isinstance(node, dict):
        return True
    known = elements(model)
    for name, value in node.items():
        element = known.get(name)
        if element is None:
            continue
        if element.model is None:
            if name == "system" and element.primitive == "uri" and system_problem(value):
                return False
            continue
        if isinstance(value, list):
            for item in value:
                if not _systems_valid(element.model, item):
                    return False
        elif not _systems_valid(element.model, value):
            return False
    return True


def system_problem(value: Any) -> str:
    """Why ``value`` is not a FHIR coding/identifier ``system`` ("" when it is one)."""
    if not isinstance(value, str) or not _ABSOLUTE_URI.fullmatch(value):
        return "not an absolute URI (a bare OID is written urn:oid:<OID>)"
    lowered = value[:9].lower()
    if lowered.startswith("urn:oid:") and not _OID_URN.fullmatch(value):
        return "not a valid OID after urn:oid:"
    if lowered == "urn:uuid:" and not _UUID_URN.fullmatch(value):
        return "not a valid UUID after urn:uuid:"
    return ""


def _system_problems(model: type[BaseModel], node: Any, path: str) -> list[str]:
    """Every ``system`` (type uri) under ``node`` that is not an absolute URI (see the
    module docstring); elements the model does not know are left to the other checks."""
    if not isinstance(node, dict):
        return []
    problems: list[str] = []
    known = elements(model)
    for name, value in node.items():
        element = known.get(name)
        if element is None:
            continue
        if element.model is None:
            if name == "system" and element.primitive == "uri":
                why = system_problem(value)
                if why:
                    problems.append(f"{path}.{name}: {why}")
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                problems += _system_problems(element.model, item, f"{path}.{name}[{index}]")
        else:
            problems += _system_problems(element.model, value, f"{path}.{name}")
    return problems


def _model_problems(model: type[BaseModel], resource: dict[str, Any], rtype: str) -> list[str]:
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        out = []
        for detail in exc.errors(include_url=False, include_input=False):
            loc = "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}"
                for p in detail["loc"]
                if not str(p).startswith("function-")
            )
            message = detail["msg"].removeprefix("Value error, ")
            out.append(f"{rtype}{loc}: {message}")
        return out
    return []


_SHAPES: set[tuple[str, Any]] = set()
_MAX_SHAPES = 4096
_ADAPTERS: dict[tuple[type[BaseModel], str], TypeAdapter[Any]] = {}
_EMPTY_TEXT = "empty string"


def _shape(node: Any) -> Any:
    """Keys, list lengths and leaf JSON types of ``node`` (what the model validators read)."""
    kind = type(node)
    if kind is dict:
        return tuple((key, _shape(value)) for key, value in node.items())
    if kind is list:
        return ("[", tuple(_shape(item) for item in node))
    if kind is str and not node:
        return _EMPTY_TEXT
    return kind


def _cached_problems(model: type[BaseModel], resource: dict[str, Any], rtype: str) -> list[str]:
    key = (rtype, _shape(resource))
    if key in _SHAPES:
        body = {k: v for k, v in resource.items() if k != "resourceType"}
        leaves: list[tuple[TypeAdapter[Any], Any]] = []
        if _leaves(model, body, leaves):
            try:
                for adapter, value in leaves:
                    adapter.validate_python(value)
            except ValidationError:
                pass  # model_validate says where, in its own words
            else:
                return []
    problems = _model_problems(model, resource, rtype)
    if not problems:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES.add(key)
    return problems


def _leaves(
    model: type[BaseModel], node: dict[str, Any], out: list[tuple[TypeAdapter[Any], Any]]
) -> bool:
    """Collect (validator of the field, value) for every primitive of ``node``; False when
    an element is not in the tables (a ``_x`` sibling): then ``model_validate`` decides."""
    known = elements(model)
    for name, value in node.items():
        element = known.get(name)
        if element is None:
            return False
        if element.model is not None:
            items = value if element.is_list else [value]
            for item in items:
                if not _leaves(element.model, item, out):
                    return False
            continue
        adapter = _ADAPTERS.get((model, name))
        if adapter is None:
            adapter = _ADAPTERS[(model, name)] = _field_adapter(model, name)
        out.append((adapter, value))
    return True


def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    for field_name, field in model.model_fields.items():
        if (field.alias or field_name) == name and field.annotation is not None:
            return TypeAdapter(field.annotation)
    raise ValueError(f"{model.__name__} has no field {name}")  # pragma: no cover - tables agree


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield f"{path}.reference", value
            elif isinstance(value, dict | list):
                yield from _references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, f"{path}[{index}]")


_REQUIRED: dict[type[BaseModel], tuple[str, ...]] = {}
_KNOWN: dict[type[BaseModel], dict[str, Element]] = {}


def _walk(model: type[BaseModel], node: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    known = _KNOWN.get(model)
    if known is None:
        known = _KNOWN[model] = elements(model)
        _REQUIRED[model] = tuple(n for n, e in known.items() if e.required)
    choices: set[str] | None = None
    for name, value in node.items():
        element = known.get(name)
        if element is None:
            problems.append(f"{path}.{name}: unknown element")
            continue
        if element.choice:
            choices = choices or set()
            if element.choice in choices:
                problems.append(f"{path}.{name}: only one of {element.choice}[x] may be given")
            choices.add(element.choice)
        if element.is_list:
            if not isinstance(value, list) or not value:
                problems.append(f"{path}.{name}: expected a non-empty list")
                continue
            for index, item in enumerate(value):
                found = _check(element.model, element.primitive, item, path, name, index)
                if found:
                    problems += found
        elif isinstance(value, list):
            problems.append(f"{path}.{name}: does not repeat")
        else:
            found = _check(element.model, element.primitive, value, path, name, -1)
            if found:
                problems += found
    for name in _REQUIRED[model]:
        if name not in node:
            problems.append(f"{path}.{name}: required element missing")
    if not node:
        problems.append(f"{path}: empty element")
    return problems


def _check(
    model: type[BaseModel] | None, primitive: str, value: Any, path: str, name: str, index: int
) -> list[str] | None:
    """Problems of one value (None when fine); the path is built only on a problem
    or to go down into a complex element."""
    if model is not None:
        where = f"{path}.{name}" if index < 0 else f"{path}.{name}[{index}]"
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        return _walk(model, value, where)
    if primitive == "boolean":
        if isinstance(value, bool):
            return None
        problem = "not a boolean"
    elif primitive in ("integer", "decimal"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return None
        problem = "not a number"
    elif not isinstance(value, str) or not value:
        problem = "not a non-empty string"
    else:
        pattern = _FORMATS.get(primitive)
        if pattern is None or pattern.fullmatch(value):
            return None
        problem = f"not a FHIR {primitive}"
    where = f"{path}.{name}" if index < 0 else f"{path}.{name}[{index}]"
    return [f"{where}: {problem}"]
