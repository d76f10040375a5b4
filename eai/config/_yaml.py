"""Composes ``routes.yaml`` into marked YAML nodes and turns them into plain data.

Touches: nothing (works on text already read).

Everything works on the composed node tree (``yaml.compose`` with the safe
loader) so that every value keeps its line and column: ``${NAME}`` and
``${NAME:-default}`` are substituted in scalar nodes in place, duplicate keys
are found on mapping nodes, and only then is the tree constructed into dicts,
lists and scalars for pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "Finding",
    "Loc",
    "compose",
    "construct",
    "find_duplicate_keys",
    "format_path",
    "mapping_item",
    "position",
    "substitute_env",
]

Loc = tuple[str | int, ...]
"""A path into the document: mapping keys and sequence indexes."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_REFERENCE = re.compile(
    r"\$\$\{"  # escaped: $${ stands for a literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{)"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem at a 1-based position, before the file name is attached."""

    line: int
    column: int
    message: str


def position(node: Node) -> tuple[int, int]:
    """The 1-based (line, column) where ``node`` starts."""
    return node.start_mark.line + 1, node.start_mark.column + 1


def format_path(loc: Loc) -> str:
    """``("routes", 0, "to", 1)`` -> ``routes[0].to[1]``."""
    out: list[str] = []
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else part)
    return "".join(out) or "(top level)"


def compose(text: str) -> Node | None:
    """Compose one YAML document; raises ``yaml.YAMLError`` on bad syntax."""
    return yaml.compose(text, Loader=yaml.SafeLoader)


def construct(node: Node) -> Any:
    """Turn a composed (and substituted) node tree into plain Python data."""
    return SafeConstructor().construct_document(node)


def mapping_item(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    """The ``(key node, value node)`` for ``key``; the last one wins, as when
    constructing. Keys brought in by a ``<<`` merge are looked up too."""
    for key_node, value_node in reversed(node.value):
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            if key_node.tag != _MERGE_TAG:
                return key_node, value_node
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in reversed(sources):
                if isinstance(source, MappingNode):
                    found = mapping_item(source, key)
                    if found is not None:
                        return found
    return None


def _walk(node: Node, loc: Loc, seen: set[int]) -> Iterator[tuple[Node, Loc, bool]]:
    """Yield ``(node, loc, is_key)`` for every node once (aliases are shared)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    yield node, loc, False
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key: str | int = key_node.value if isinstance(key_node, ScalarNode) else "?"
            yield key_node, (*loc, key), True
            yield from _walk(value_node, (*loc, key), seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*loc, index), seen)


def substitute_env(root: Node, env: Mapping[str, str], text: str) -> list[tuple[Node, Finding]]:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in scalar values, in place.

    ``:-default`` is used when ``NAME`` is unset or empty; ``$${`` stands for a
    literal ``${``. Keys are never substituted. An unset variable without a
    default is a finding at the ``${`` (``text`` is the source, for columns),
    returned with the node it leaves unresolved.
    """
    findings: list[tuple[Node, Finding]] = []
    for node, loc, is_key in _walk(root, (), set()):
        if is_key or not isinstance(node, ScalarNode) or "${" not in node.value:
            continue
        missing: list[str] = []

        def replace(match: re.Match[str], missing: list[str] = missing) -> str:
            if match.group("bad") is not None:
                missing.append("")
                return match.group(0)
            name = match.group("name")
            if name is None:
                return "${"
            value = env.get(name)
            if value is None or (value == "" and match.group("default") is not None):
                if match.group("default") is not None:
                    return match.group("default")
                missing.append(name)
                return match.group(0)
            return value

        node.value = _REFERENCE.sub(replace, node.value)
        source = text[node.start_mark.index : node.end_mark.index]
        cursor = 0
        for name in missing:
            needle = "${" + name
            found = source.find(needle, cursor)
            line, column = position(node)
            if found >= 0:
                cursor = found + len(needle)
                line, column = _line_column(text, node.start_mark.index + found)
            if name:
                problem = f"environment variable {name} is not set (use ${{{name}:-default}})"
            else:
                problem = "malformed ${...}: use ${NAME} or ${NAME:-default} ($${ for a literal)"
            findings.append((node, Finding(line, column, f"{format_path(loc)}: {problem}")))
    return findings


def _line_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def find_duplicate_keys(root: Node) -> list[Finding]:
    """A key given twice in one mapping is a finding at its second occurrence."""
    findings: list[Finding] = []
    for node, loc, is_key in _walk(root, (), set()):
        if is_key or not isinstance(node, MappingNode):
            continue
        first: dict[tuple[str, str], Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            marker = (key_node.tag, key_node.value)
            if marker in first:
                line, column = position(key_node)
                where = position(first[marker])[0]
                path = format_path((*loc, key_node.value))
                findings.append(
                    Finding(line, column, f"{path}: duplicate key (first given on line {where})")
                )
            else:
                first[marker] = key_node
    return findings
