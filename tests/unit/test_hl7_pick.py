"""pick() finds a repetition, component or subcomponent by position: the same answers as
splitting the field (the rule it replaced), without copying what follows the part."""

from __future__ import annotations

import itertools

from eai.hl7._element import _SHORT, Delimiters, pick

D = Delimiters.of("|", "^~\\&")


def by_split(text: str, rep: int, comp: int, sub: int) -> str | None:
    for index, sep in ((rep, "~"), (comp, "^"), (sub, "&")):
        if index:
            parts = text.split(sep, index)
            if index > len(parts):
                return None
            text = parts[index - 1]
    return text


def test_every_position_of_every_shape_gives_what_a_split_gives() -> None:
    fields = [
        "",
        "A",
        "^",
        "^^",
        "A^B^C",
        "^TEXT^XML^Base64^PD94bWw=",
        "A&B^C&&D~E^^F&G~",
        "~~",
        "1^2^3^4^5^6^7^8^9^10^11",
        "x&y&z",
    ]
    # Each shape also longer than pick's split limit, at either end (the search by position).
    long = "Z" * (_SHORT + 1)
    shapes = [*fields, *(f + long for f in fields), *(long + f for f in fields)]
    for text, rep, comp, sub in itertools.product(shapes, range(4), range(12), range(4)):
        assert pick(text, D, rep, comp, sub) == by_split(text, rep, comp, sub), (
            text,
            rep,
            comp,
            sub,
        )


def test_the_data_of_an_ed_is_its_fifth_component() -> None:
    data = "QUJD" * 50_000
    assert pick(f"^TEXT^XML^Base64^{data}", D, 1, 5, 0) == data
    assert pick(f"^TEXT^XML^Base64^{data}", D, 1, 4, 0) == "Base64"
    assert pick(f"^TEXT^XML^Base64^{data}", D, 1, 6, 0) is None


def test_a_long_segment_splits_into_the_same_fields() -> None:
    from eai.hl7._reader import _LONG, _split

    for text in (
        "",
        "|",
        "A|B",
        "||",
        "OBX|1|ED|",
        "OBX|1|ED|x^" + "Q" * _LONG + "|F|",
        "Z" * _LONG,
    ):
        for padded in (text, text + "|" * 3 + "A" * (_LONG + 1)):
            assert _split(padded, "|") == padded.split("|")
