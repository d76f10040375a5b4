"""YAML syntax errors in plain words: ``FILE:LINE:COL: invalid YAML: <what to fix> (parser:
<PyYAML's own text>)``, at the line and column to fix, for the mistakes people make."""

from __future__ import annotations

import pytest

from eai.config import load_config_text
from eai.errors import ConfigError


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "routes.yaml", {})
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("text", "where", "sentence", "parser"),
    [
        pytest.param(
            "listeners:\n  - name: a\n    type: mllp\n   bind: x\n",
            "4:4",
            "bad indentation: this line does not line up with the lines above (the list that "
            "starts at line 2, column 3); the keys of one mapping start in the same column",
            "expected <block end>, but found '<block mapping start>'",
            id="key-less-indented",
        ),
        pytest.param(
            "engine:\n  data_dir: x\n   database: y\n",
            "3:4",
            "bad indentation: this key is indented more than the key on line 2 (column 3)",
            "mapping values are not allowed here",
            id="key-more-indented",
        ),
        pytest.param(
            "routes:\n  - name: a\n   - name: b\n",
            "3:4",
            "bad indentation of a list item: this '-' does not line up with the lines above",
            "expected <block end>, but found '<block sequence start>'",
            id="list-item-more-indented",
        ),
        pytest.param(
            "engine:\n  data_dir: x\n  - y\n",
            "3:3",
            "bad indentation of a list item",
            "expected <block end>, but found '-'",
            id="list-item-in-a-mapping",
        ),
        pytest.param(
            "engine:\n\tdata_dir: x\n",
            "2:1",
            "this line is indented with a tab: YAML indents with spaces only",
            "found character '\\t' that cannot start any token",
            id="tab-indent",
        ),
        pytest.param(
            "engine:\n  data_dir:\tx\n  database: \t y\n",
            "2:12",
            "a tab where YAML expects a value or a key: use spaces instead",
            "found character '\\t' that cannot start any token",
            id="tab-before-value",
        ),
        pytest.param(
            'engine:\n  data_dir: "abc\n  database: y\n',
            "2:13",
            'the quoted value that starts here (") is never closed: add the closing " at its end',
            "while scanning a quoted scalar, found unexpected end of stream at line 4, column 1",
            id="unclosed-double-quote",
        ),
        pytest.param(
            "engine:\n  data_dir: 'abc\n",
            "2:13",
            "the quoted value that starts here (') is never closed",
            "found unexpected end of stream",
            id="unclosed-single-quote",
        ),
        pytest.param(
            "routes:\n  - to: [a, b\n  - name: c\n",
            "2:9",
            "the list opened with '[' here is not closed: add ']' after its last item",
            "while parsing a flow sequence, expected ',' or ']', but got ':' at line 3, column 9",
            id="unclosed-bracket",
        ),
        pytest.param(
            "engine: {data_dir: x\nlisteners: []\n",
            "1:9",
            "the mapping opened with '{' here is not closed: add '}'",
            "expected ',' or '}', but got ':'",
            id="unclosed-brace",
        ),
        pytest.param(
            "engine:\n  data_dir x\n  database: y\n",
            "2:13",
            "this line has no ':' after its key, so YAML reads the next line as the rest of "
            "its value: write 'key: value'",
            "mapping values are not allowed here at line 3, column 11",
            id="missing-colon",
        ),
        pytest.param(
            "engine:\n  data_dir: a: b\n",
            "2:14",
            "a second ': ' on this line: a value that contains ': ' must be in quotes",
            "mapping values are not allowed here",
            id="colon-in-value",
        ),
        pytest.param(
            "engine:\n  data_dir: @x\n",
            "2:13",
            "a value cannot start with '@' in YAML: put the whole value in quotes",
            "found character '@' that cannot start any token",
            id="reserved-character",
        ),
        pytest.param(
            "engine:\n  data_dir: a\n  x: 'a'b\n",
            "3:9",
            "text after the end of a value: a value in quotes ends at its closing quote",
            "expected <block end>, but found '<scalar>'",
            id="text-after-quotes",
        ),
        pytest.param(
            "engine: *foo\n",
            "1:9",
            "'*foo' refers to an anchor '&foo' that is not defined above it",
            "found undefined alias 'foo'",
            id="undefined-alias",
        ),
        pytest.param(
            "engine: {}\n---\nroutes: []\n",
            "2:1",
            "a second YAML document ('---') in the file",
            "but found another document",
            id="two-documents",
        ),
        pytest.param(
            "engine: !secret x\n",
            "1:9",
            "'!secret' is a YAML tag eai does not know",
            "could not determine a constructor for the tag '!secret'",
            id="unknown-tag",
        ),
        pytest.param(
            'engine:\n  data_dir: "C:\\data"\n',
            "2:17",
            "'\\d' is not an escape inside double quotes: write '\\\\' for a backslash, or "
            "use single quotes",
            "found unknown escape character 'd'",
            id="backslash-in-double-quotes",
        ),
        pytest.param(
            "engine:\n  data_dir: |x\n",
            "2:13",
            "after '|' or '>' the text goes on the next lines, indented",
            "expected chomping or indentation indicators, but found 'x'",
            id="block-scalar-indicator",
        ),
        pytest.param(
            "engine: &\n",
            "1:9",
            "'&' and '*' start a YAML anchor or alias, followed by its name",
            "while scanning an anchor",
            id="anchor-without-name",
        ),
        pytest.param(
            "routes: [- a]\n",
            "1:10",
            "'- ' items cannot go inside [ ]: separate the items with ','",
            "expected the node content, but found '-'",
            id="dash-inside-brackets",
        ),
        pytest.param(
            "engine:\n  data_dir: \x00\n",
            "2:13",
            "a control character (#x0000) YAML does not allow",
            "special characters are not allowed",
            id="control-character",
        ),
    ],
)
def test_a_yaml_error_says_what_to_fix_and_keeps_the_parser_text(
    text: str, where: str, sentence: str, parser: str
) -> None:
    [issue] = _issues(text)
    assert issue.startswith(f"routes.yaml:{where}: invalid YAML: ")
    said, _, kept = issue.partition(" (parser: ")
    assert sentence in said
    assert parser in kept and kept.endswith(")")


def test_the_reported_example_is_a_sentence_about_indentation() -> None:
    # issue 23: "invalid YAML: expected <block end>, but found '<block mapping start>'"
    [issue] = _issues("routes:\n  - name: a\n    to: [dcc]\n   from: [adt]\n")
    assert issue == (
        "routes.yaml:4:4: invalid YAML: bad indentation: this line does not line up with the "
        "lines above (the list that starts at line 2, column 3); the keys of one mapping "
        "start in the same column (parser: while parsing a block collection at line 2, "
        "column 3, expected <block end>, but found '<block mapping start>')"
    )


def test_a_duplicate_key_is_named_with_its_first_line() -> None:
    assert _issues("engine:\n  data_dir: a\n  data_dir: b\n") == [
        "routes.yaml:3:3: engine.data_dir: duplicate key (first given on line 2)"
    ]
