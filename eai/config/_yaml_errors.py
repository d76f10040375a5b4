"""Says what a PyYAML syntax error means, in plain words, at the line and column to fix.

Touches: nothing (works on the error and the text already read).

PyYAML reports what its parser expected (``expected <block end>, but found '<block
mapping start>'``); :func:`explain` turns the common cases into a sentence about the
file (indentation, tabs, unclosed quotes and brackets, a missing ``:``, a value that
needs quotes) and keeps the parser's own text after it, in parentheses, for the rare
case the sentence guesses wrong. A rule is a function of the error and the text that
returns a finding or None; the first that answers wins (:data:`_RULES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml
from yaml.error import Mark
from yaml.reader import ReaderError

from eai.config._yaml import Finding

__all__ = ["explain"]

_INVALID = "invalid YAML"
_FOUND = re.compile(r"but found '(?P<token>[^']*)'")
_FLOW = re.compile(r"expected ',' or '(?P<close>[\]}])', but got")
_CHARACTER = re.compile(r"found character '(?P<char>.+)' that cannot start any token")
_ALIAS = re.compile(r"found undefined alias '(?P<name>[^']*)'")
_ANCHOR = re.compile(r"found duplicate anchor '(?P<name>[^']*)'")
_TAG = re.compile(r"could not determine a constructor for the tag '(?P<tag>[^']*)'")
_ESCAPE = re.compile(r"found unknown escape character '(?P<char>[^']*)'")

Rule = Callable[[yaml.MarkedYAMLError, list[str]], Finding | None]


def explain(exc: yaml.YAMLError, text: str) -> Finding:
    """One finding for a YAML error raised on ``text``: the first matching rule's
    sentence, followed by the parser's text; the parser's text alone when no rule
    knows the case."""
    lines = text.splitlines()
    if isinstance(exc, ReaderError):
        return _reader(exc, text)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Finding(1, 1, f"{_INVALID}: {exc}")
    for rule in _RULES:
        found = rule(exc, lines)
        if found is not None:
            return found
    line, column = _where(exc.problem_mark or exc.context_mark)
    return Finding(line, column, f"{_INVALID}: {_parser_text(exc)}")


def _where(mark: Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _parser_text(exc: yaml.MarkedYAMLError, shown: tuple[int, int] | None = None) -> str:
    """What PyYAML said: its context and its problem, each with its line and column when
    it is not where the finding points (``shown``, 1-based; default: the problem's)."""
    shown = shown or _where(exc.problem_mark or exc.context_mark)

    def at(mark: Mark | None) -> str:
        if mark is None or (mark.line + 1, mark.column + 1) == shown:
            return ""
        return f" at line {mark.line + 1}, column {mark.column + 1}"

    parts: list[str] = []
    if exc.context:
        parts.append(exc.context + at(exc.context_mark))
    if exc.problem:
        parts.append(exc.problem + at(exc.problem_mark))
    return ", ".join(parts) or "syntax error"


def _say(exc: yaml.MarkedYAMLError, mark: Mark | None, sentence: str) -> Finding:
    return _at(exc, *_where(mark), sentence)


def _at(exc: yaml.MarkedYAMLError, line: int, column: int, sentence: str) -> Finding:
    """``sentence`` at ``line``:``column`` (1-based), the parser's text after it."""
    text = _parser_text(exc, (line, column))
    return Finding(line, column, f"{_INVALID}: {sentence} (parser: {text})")


def _line(lines: list[str], mark: Mark | None) -> str:
    if mark is None or mark.line >= len(lines):
        return ""
    return lines[mark.line]


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _previous(lines: list[str], mark: Mark) -> tuple[int, str] | None:
    """The nearest line above ``mark``'s that is not blank nor a comment (0-based)."""
    for index in range(min(mark.line, len(lines)) - 1, -1, -1):
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("#"):
            return index, lines[index]
    return None


def _tab(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    if exc.problem is None or "found character '\\t'" not in exc.problem:
        return None
    mark = exc.problem_mark
    before = _line(lines, mark)[: mark.column if mark else 0]
    if before.strip() == "":
        sentence = "this line is indented with a tab: YAML indents with spaces only"
    else:
        sentence = "a tab where YAML expects a value or a key: use spaces instead"
    return _say(exc, mark, sentence)


def _character(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    match = _CHARACTER.search(exc.problem or "")
    if match is None:
        return None
    char = match.group("char")
    return _say(
        exc,
        exc.problem_mark,
        f'a value cannot start with {char!r} in YAML: put the whole value in quotes ("{char}...")',
    )


def _unclosed_quote(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    if exc.context != "while scanning a quoted scalar" or exc.context_mark is None:
        return None
    quote = _line(lines, exc.context_mark)[exc.context_mark.column : exc.context_mark.column + 1]
    quote = quote or '"'
    return _say(
        exc,
        exc.context_mark,
        f"the quoted value that starts here ({quote}) is never closed: add the closing "
        f"{quote} at its end",
    )


def _unclosed_flow(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    match = _FLOW.search(exc.problem or "")
    if match is None or exc.context_mark is None:
        return None
    close = match.group("close")
    opening, kind = ("[", "list") if close == "]" else ("{", "mapping")
    return _say(
        exc,
        exc.context_mark,
        f"the {kind} opened with {opening!r} here is not closed: add {close!r} after its "
        f"last item (items are separated by ',')",
    )


def _block_end(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    """``expected <block end>, but found ...``: a line that does not line up with the
    mapping or list it is in."""
    problem = exc.problem or ""
    found = _FOUND.search(problem)
    if not problem.startswith("expected <block end>") or found is None:
        return None
    token = found.group("token")
    mark = exc.problem_mark
    start = exc.context_mark
    opened = (
        f" (the {'list' if 'collection' in (exc.context or '') else 'mapping'} that starts at "
        f"line {start.line + 1}, column {start.column + 1})"
        if start is not None
        else ""
    )
    if token in ("<block sequence start>", "-"):
        sentence = (
            f"bad indentation of a list item: this '-' does not line up with the lines "
            f"above{opened}; the items of one list start in the same column, and a list "
            "under a key goes on the lines after 'key:', indented"
        )
    elif token == "<scalar>":
        sentence = (
            "text after the end of a value: a value in quotes ends at its closing quote; "
            "quote the whole value, or remove what follows it"
        )
    else:
        sentence = (
            f"bad indentation: this line does not line up with the lines above{opened}; "
            "the keys of one mapping start in the same column"
        )
    return _say(exc, mark, sentence)


def _not_found_indicator(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    problem = exc.problem or ""
    if problem not in ("did not find expected key", "did not find expected '-' indicator"):
        return None
    what = "key" if problem.endswith("key") else "list item ('-')"
    return _say(
        exc,
        exc.problem_mark,
        f"bad indentation: a {what} was expected at this column; check that this line "
        "lines up with the lines above it",
    )


def _mapping_value(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    """``mapping values are not allowed here``: a ``:`` where a value goes on."""
    if exc.problem != "mapping values are not allowed here" or exc.problem_mark is None:
        return None
    mark = exc.problem_mark
    text = _line(lines, mark)
    head = text[: mark.column]
    previous = _previous(lines, mark)
    key_start = _indent(text)
    if ": " in head.lstrip(" -") or head.rstrip().endswith(":"):
        sentence = (
            "a second ': ' on this line: a value that contains ': ' must be in quotes "
            '(key: "a: b")'
        )
        return _say(exc, mark, sentence)
    if previous is not None:
        index, above = previous
        stripped = above.strip()
        if ":" not in stripped and not stripped.startswith("- "):
            return _at(
                exc,
                index + 1,
                len(above.rstrip()) + 1,
                "this line has no ':' after its key, so YAML reads the next line as the "
                "rest of its value: write 'key: value'",
            )
        above_key = _indent(above) + (2 if stripped.startswith("- ") else 0)
        if key_start > above_key:
            return _at(
                exc,
                mark.line + 1,
                key_start + 1,
                f"bad indentation: this key is indented more than the key on line "
                f"{index + 1} (column {above_key + 1}), so YAML reads it as the rest of that "
                "line's value: line it up with that key, or put it under a key that ends "
                "with ':'",
            )
    return _say(
        exc,
        mark,
        "a ':' where YAML does not expect a key: quote the value if it contains ': ', "
        "or check the indentation of this line",
    )


def _simple_key(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    if exc.context != "while scanning a simple key" or exc.context_mark is None:
        return None
    return _say(
        exc,
        exc.context_mark,
        "this line has no ':' after its key: write 'key: value', or indent it under the "
        "key above if it continues a value",
    )


def _scalar_start(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    """A value whose first character means something to YAML (``|``, ``>``, ``&``,
    ``*``), or a ``\\x`` that is no escape inside double quotes."""
    context = exc.context or ""
    escape = _ESCAPE.search(exc.problem or "")
    if escape is not None:
        return _say(
            exc,
            exc.problem_mark,
            f"'\\{escape.group('char')}' is not an escape inside double quotes: write '\\\\' "
            "for a backslash, or use single quotes, where '\\' is an ordinary character",
        )
    if context.startswith("while scanning a block scalar"):
        return _say(
            exc,
            exc.context_mark,
            "after '|' or '>' the text goes on the next lines, indented (only '-', '+' or "
            "an indentation digit may follow them): quote the value if it starts with "
            "'|' or '>'",
        )
    if context.startswith(("while scanning an anchor", "while scanning an alias")):
        return _say(
            exc,
            exc.context_mark,
            "'&' and '*' start a YAML anchor or alias, followed by its name: quote the "
            "value if it is text that starts with them",
        )
    if context == "while parsing a flow node" and "found '-'" in (exc.problem or ""):
        return _say(
            exc,
            exc.problem_mark,
            "'- ' items cannot go inside [ ]: separate the items with ',' ([a, b]), or "
            "write one '- item' per line without the brackets",
        )
    return None


def _composer(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    problem = exc.problem or ""
    alias = _ALIAS.search(problem)
    if alias is not None:
        name = alias.group("name")
        return _say(
            exc,
            exc.problem_mark,
            f"'*{name}' refers to an anchor '&{name}' that is not defined above it",
        )
    anchor = _ANCHOR.search(exc.context or "")
    if anchor is not None:
        first = exc.context_mark
        where = f" (first at line {first.line + 1})" if first is not None else ""
        return _say(
            exc,
            exc.problem_mark,
            f"the anchor '&{anchor.group('name')}' is defined twice{where}: give each "
            "anchor its own name",
        )
    if exc.context == "expected a single document in the stream":
        return _say(
            exc,
            exc.problem_mark,
            "a second YAML document ('---') in the file: the configuration is one document",
        )
    return None


def _constructor(exc: yaml.MarkedYAMLError, lines: list[str]) -> Finding | None:
    problem = exc.problem or ""
    tag = _TAG.search(problem)
    if tag is not None:
        return _say(
            exc,
            exc.problem_mark,
            f"{tag.group('tag')!r} is a YAML tag eai does not know: remove it, or put the "
            "value in quotes",
        )
    if problem == "found unhashable key":
        return _say(exc, exc.problem_mark, "a key that is a list or a mapping: keys are plain text")
    return None


def _reader(exc: ReaderError, text: str) -> Finding:
    """A character YAML does not accept (NUL, other control characters)."""
    index = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
    return Finding(
        line,
        column,
        f"{_INVALID}: a control character (#x{code:04x}) YAML does not allow: remove it "
        f"(is this a text file?) (parser: {exc.reason})",
    )


_RULES: tuple[Rule, ...] = (
    _tab,
    _character,
    _unclosed_quote,
    _unclosed_flow,
    _block_end,
    _not_found_indicator,
    _mapping_value,
    _simple_key,
    _scalar_start,
    _composer,
    _constructor,
)
"""Tried in order on a marked error; the first that returns a finding wins."""
