"""Read a mapping YAML file keeping node positions, and turn problems into file:line issues.

Touches: nothing (works on text already read).

Mapping files and their ``.tests.yaml`` are composed with PyYAML's safe loader
(no tags, no Python objects), constructed into plain data, and every problem
found later (pydantic validation, an unknown FHIR element, a source path that
does not parse) is pointed at the node it comes from, as ``eai check`` does
for ``routes.yaml``: ``pamfr-adt.yaml:42:7: resources[0].rules[3]: <problem>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from eai.errors import ConfigError, ConfigIssue

__all__ = ["Loc", "YamlDoc", "format_loc", "read_yaml"]


class _Loader(yaml.SafeLoader):
    """The safe loader without implicit floats: ``.1`` and ``.4.2`` (relative source
    paths) and ``1.2`` stay text; a float-typed FHIR element types them on write."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UNION_MEMBER = ("str", "int", "float", "bool", "list[str]")

Loc = tuple[str | int, ...]

_FRIENDLY = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "string_type": "expected a string",
}


def format_loc(loc: Loc) -> str:
    """``("resources", 0, "rules", 2)`` -> ``resources[0].rules[2]``."""
    out: list[str] = []
    for part in loc:
        out.append(f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part))
    return "".join(out) or "(top level)"


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """A parsed YAML file: its data and its node tree (for positions)."""

    filename: str
    data: Any
    root: Node

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the node at ``loc`` (the deepest one found);
        with ``key``, of the mapping key rather than its value."""
        node, key_node = self.root, None
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
        target = key_node if key and key_node is not None else node
        return target.start_mark.line + 1, target.start_mark.column + 1

    def issue(self, loc: Loc, message: str, *, key: bool = False) -> ConfigIssue:
        line, column = self.position(loc, key=key)
        return ConfigIssue(self.filename, line, column, f"{format_loc(loc)}: {message}")

    def validation_issues(self, error: ValidationError, base: Loc = ()) -> list[ConfigIssue]:
        """One issue per pydantic error, at the node it names (values never shown)."""
        found: dict[Loc, tuple[list[str], bool]] = {}
        for detail in error.errors(include_url=False, include_input=False):
            loc = (*base, *(p for p in detail["loc"] if not _is_member_tag(p)))
            message = _FRIENDLY.get(detail["type"], detail["msg"])
            message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            messages, _ = found.setdefault(loc, ([], detail["type"] == "extra_forbidden"))
            if message not in messages:
                messages.append(message)
        return [
            self.issue(loc, " or ".join(messages), key=key)
            for loc, (messages, key) in found.items()
        ]


def _is_member_tag(part: str | int) -> bool:
    """pydantic names the union member it tried (``str``, ``function-after[...]``)."""
    return isinstance(part, str) and (
        part in _UNION_MEMBER or part.startswith("function-") or part.endswith("Object")
    )


def _child(node: Node, part: str | int) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key_node, value_node in reversed(node.value):
            if isinstance(key_node, ScalarNode) and key_node.value == part:
                return key_node, value_node
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


def read_yaml(text: str, filename: str) -> YamlDoc:
    """Compose and construct ``text``; raise ConfigError (file:line) on bad YAML,
    an empty document, a top level that is not a mapping, or a duplicate key."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is None:
            raise ConfigError([ConfigIssue(filename, 1, 1, "the file is empty")])
        if not isinstance(root, MappingNode):
            raise ConfigError([ConfigIssue(filename, 1, 1, "the top level is not a mapping")])
        duplicates = _duplicate_keys(root, filename)
        if duplicates:
            raise ConfigError(duplicates)
        data = _Loader("").construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            [ConfigIssue(filename, line, column, f"invalid YAML: {problem}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(filename, 1, 1, f"invalid YAML: {exc}")]) from None
    return YamlDoc(filename, data, root)


def _duplicate_keys(node: Node, filename: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                if key_node.value in seen:
                    line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    issues.append(
                        ConfigIssue(filename, line, column, f"duplicate key {key_node.value!r}")
                    )
                seen.add(key_node.value)
            issues += _duplicate_keys(value_node, filename)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            issues += _duplicate_keys(item, filename)
    return issues
