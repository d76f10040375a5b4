"""Message type patterns compile before any kind is registered: ``eai mapping list`` in a
fresh interpreter no longer imports eai.config (which registers CDA) first."""

from __future__ import annotations

import pytest

from eai import message_types
from eai.message_types import MessageTypeSet


def test_bare_codes_and_hl7_patterns_without_a_registered_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(message_types, "_kinds", {})
    types = MessageTypeSet.of(["ORU", "MDM^T02", "*^A01"])
    assert types.codes == {"ORU"} and types.exact == {("MDM", "T02")}
    assert types.triggers == {"A01"} and not types.everything
    assert "ORU^R01" in types and "ADT^A01" in types and "ADT^A08" not in types
