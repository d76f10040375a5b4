"""``is_uid`` is the PS3.5 9.1 UID grammar within 64 characters (checked with hypothesis).

The SCP refusing instances keyed on a bad UID: tests/integration/test_dicom_uid_validation.py.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicom_router.config import is_uid

GRAMMAR = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")

components = st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True))
uids = st.lists(components, min_size=1, max_size=12).map(".".join).filter(lambda u: len(u) <= 64)


@settings(max_examples=300, deadline=None)
@given(uid=uids)
def test_uids_built_by_the_grammar_are_uids(uid: str) -> None:
    assert is_uid(uid)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="0123456789./x\\ \x00-", max_size=70))
def test_is_uid_is_the_ps3_5_grammar_within_64_characters(text: str) -> None:
    assert is_uid(text) == (len(text) <= 64 and GRAMMAR.fullmatch(text) is not None)


@pytest.mark.parametrize(
    "text",
    ["../../x", "1.2.840/../x", "1.02.3", "01.2", "1..2", ".1.2", "1.2.", "1.2.3 ", "1.2.a", ""]
    + ["1." + "1" * 63],
)
def test_not_uids(text: str) -> None:
    assert not is_uid(text)


# -- the SCP's C-STORE path ---------------------------------------------------------
