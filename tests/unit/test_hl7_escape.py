"""escape and unescape (HL7 v2.5 section 2.7)."""

from __future__ import annotations

import pytest

from eai.hl7 import escape, unescape

ENC = "^~\\&"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("\\F\\\\S\\\\T\\\\R\\\\E\\", "|^&~\\"),
        ("a\\.br\\b", "a\nb"),
        ("\\X41424344\\", "ABCD"),
        ("\\XC3A9\\", "é"),
        ("\\X0D0A\\", "\r\n"),
        ("\\X4\\", "\\X4\\"),  # odd number of digits
        ("\\XZZ\\", "\\XZZ\\"),  # not hex
        ("\\X\\", "\\X\\"),
        ("\\H\\bold\\N\\", "\\H\\bold\\N\\"),  # formatting kept literally
        ("\\.sp\\", "\\.sp\\"),
        ("\\C2842\\", "\\C2842\\"),
        ("\\Zfoo\\x", "\\Zfoo\\x"),
        ("\\P\\", "\\P\\"),  # only with a 5th encoding character
        ("a\\F", "a\\F"),  # unterminated
        ("a\\", "a\\"),
        ("\\\\", "\\\\"),  # empty sequence
        ("x\\b\\F\\", "x\\b\\F\\"),  # an unknown sequence is consumed whole
        ("x\\b\\\\F\\", "x\\b\\|"),
    ],
)
def test_unescape(text: str, expected: str) -> None:
    assert unescape(text, ENC, "|") == expected


def test_unescape_hex_in_latin_1() -> None:
    assert unescape("\\XE9\\", ENC, "|", "latin-1") == "é"
    assert unescape("\\XE9\\", ENC, "|", "utf-8") == "\\XE9\\"
    assert unescape("\\XE9\\", ENC, "|", "no-such-codec") == "\\XE9\\"


def test_other_delimiters_and_truncation() -> None:
    assert unescape("/F//S//T//R//E//P/", "*@/%#", "$") == "$*%@/#"
    assert escape("$*%@/#", "*@/%#", "$") == "/F//S//T//R//E//P/"


def test_escape() -> None:
    assert escape("a|b^c&d~e\\f", ENC, "|") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    assert escape("l1\r\nl2\nl3\rl4", ENC, "|") == "l1\\.br\\l2\\.br\\l3\\.br\\l4"
    assert escape("\x0bframe\x1c\x7f", ENC, "|") == "\\X0B\\frame\\X1C\\\\X7F\\"
    assert escape("Noël", ENC, "|") == "Noël"


@pytest.mark.parametrize("text", ["", "a|b^c&d~e\\f", "\\F\\ literal", "x\ny", "é\t€"])
def test_round_trip(text: str) -> None:
    assert unescape(escape(text, ENC, "|"), ENC, "|") == text
