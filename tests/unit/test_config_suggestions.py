"""``eai check``'s "did you mean" suggests only documented keys: one with a description,
neither deprecated nor left out of the schema (eai.config._issues)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from eai.config import load_config_text
from eai.config._issues import findings_from_validation
from eai.config._yaml import compose, construct
from eai.errors import ConfigError


class _Peer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: float = Field(10, description="seconds to connect")
    connect_timeout_ms: float = Field(0)  # an internal knob: no description
    connect_timeout_s: float = Field(0, description="older spelling", deprecated="use ...")
    connect_timeouts: SkipJsonSchema[float] = Field(0, description="left out of the schema")


def _messages(text: str) -> list[str]:
    root = compose(text)
    assert root is not None
    with pytest.raises(ValidationError) as caught:
        _Peer.model_validate(construct(root))
    return [f.message for f in findings_from_validation(caught.value, root, _Peer)]


@pytest.mark.parametrize("typo", ["connect_timeot_ms", "connect_timeot_s", "connect_timeoutss"])
def test_only_a_documented_key_is_suggested(typo: str) -> None:
    assert _messages(f"{typo}: 5\n") == [f"{typo}: unknown key (did you mean 'connect_timeout'?)"]


def test_no_suggestion_rather_than_an_undocumented_one() -> None:
    assert _messages("connect_timeout: 1\nconnect_timeot_ms: 5\n") == [
        "connect_timeot_ms: unknown key"
    ]


def test_the_bundled_models_still_suggest_their_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text("engine:\n  databse: sqlite://\n", "routes.yaml", {})
    assert [str(i) for i in caught.value.issues] == [
        "routes.yaml:2:3: engine.databse: unknown key (did you mean 'database'?)"
    ]
