"""A plugin's contributions through eai.registry: a when condition, a route key, a cross-check
and a CLI command, with no edit to the core (here a test plugin registers them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic import Field

from eai import message_types, registry
from eai.config import MessageTypeSet, load_config_text, route_model, when_model
from eai.errors import ConfigError
from eai.registry import (
    CheckSpec,
    CommandSpec,
    ConditionSpec,
    MessageKindSpec,
    Probe,
    RouteOptionSpec,
)
from eai.routing import evaluate, reads_facts, when_matches

BASE = """\
listeners:
  - name: adt
    type: mllp
    bind: 127.0.0.1:2575
destinations:
  - name: dcc
    type: mllp
    host: 127.0.0.1
    port: 2576
routes:
  - name: r
    from: [adt]
    to: [dcc]
"""


class Header:
    message_type = "ADT^A01"
    sending_application = "ORBIS"
    sending_facility = "CHU-X"


class Msg:
    """A routable message whose ``get`` answers ``ward:<name>`` paths."""

    header = Header()

    def __init__(self, ward: str) -> None:
        self.ward = ward

    def get(self, path: str) -> str:
        if not path.startswith("ward:"):
            raise ValueError(f"not a ward path: {path}")
        return self.ward


def _ward(name: str) -> Probe:
    return lambda message, facts: message.get(f"ward:{name}")


def _weekday(days: tuple[str, ...]) -> Probe:
    return lambda message, facts: facts.get("day", "") in days


WARD = ConditionSpec(
    key="ward",
    annotation=str,
    field=Field(default=None, pattern=r"^[a-z]+$", description="a ward, tested like field"),
    compile=_ward,
    subject=True,
    summary="the ward of the message",
)
WEEKDAY = ConditionSpec(
    key="weekday",
    annotation=tuple[str, ...],
    field=Field(default=None, min_length=1, description="days of the week"),
    compile=_weekday,
    reads_facts=True,
    summary="the day fact is one of these",
)
PRIORITY = RouteOptionSpec(
    key="priority",
    annotation=int,
    field=Field(default=0, ge=0, le=9, description="a test plugin's route key"),
    summary="priority of the route",
)


def _no_priority_without_when(data: Mapping[str, Any]) -> list[tuple[registry.Loc, str]]:
    routes = data.get("routes")
    return [
        (("routes", index, "priority"), "priority needs a when")
        for index, route in enumerate(routes if isinstance(routes, list | tuple) else ())
        if isinstance(route, Mapping) and route.get("priority") and not route.get("when")
    ]


def _broken(data: Mapping[str, Any]) -> list[tuple[registry.Loc, str]]:
    raise RuntimeError("boom")


@click.command()
def hello() -> None:
    """Say hello (a test plugin's command)."""
    click.echo("hello from the plugin")


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test plugin registered for one test (the registry as it was afterwards)."""
    registry.load_builtin_connectors()
    monkeypatch.setattr(registry, "_conditions", dict(registry._conditions))
    monkeypatch.setattr(registry, "_route_options", dict(registry._route_options))
    monkeypatch.setattr(registry, "_checks", dict(registry._checks))
    monkeypatch.setattr(registry, "_commands", dict(registry._commands))
    monkeypatch.setattr(message_types, "_kinds", dict(message_types._kinds))
    registry.register_condition(WARD)
    registry.register_condition(WEEKDAY)
    registry.register_route_option(PRIORITY)
    registry.register_check(CheckSpec("priority-when", _no_priority_without_when, "test"))
    registry.register_command(CommandSpec("hello", lambda: hello, "Say hello."))
    registry.register_message_kind(MessageKindSpec("ECG", "lead count", "ECG^12"))
    yield


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    return [str(issue) for issue in info.value.issues]


def test_a_plugin_condition_is_a_when_key_nested_too(plugin: None) -> None:
    config = load_config_text(
        BASE + "    when: {any: [{ward: cardio, equals: A}, {not: {ward: cardio, exists: true}}]}\n"
    )
    (route,) = config.routes
    assert evaluate(config.routes, "adt", Msg("A")).routes == ("r",)
    assert evaluate(config.routes, "adt", Msg("")).routes == ("r",)
    assert not evaluate(config.routes, "adt", Msg("B")).routes
    assert route.when is not None and not reads_facts(route.when)


def test_a_plugin_condition_that_is_not_a_subject_holds_on_its_own(plugin: None) -> None:
    when = when_model().model_validate({"all": [{"weekday": ["mon", "tue"]}]})
    assert when_matches(when, Msg("A"), {"day": "mon"})
    assert not when_matches(when, Msg("A"), {"day": "sun"})
    assert reads_facts(when)


def test_a_plugin_condition_is_checked_with_its_position(plugin: None) -> None:
    (issue,) = issues(BASE + "    when: {ward: Cardio, equals: A}\n")
    assert issue == "routes.yaml:14:18: routes[0].when.ward: String should match pattern '^[a-z]+$'"
    (issue,) = issues(BASE + "    when: {ward: cardio}\n")
    assert issue == (
        "routes.yaml:14:12: routes[0].when.ward: 'ward' needs one of: in, equals, matches, exists"
    )
    (issue,) = issues(BASE + "    when: {field: PV1-2, ward: cardio, equals: A}\n")
    assert "'field' and 'ward' cannot be tested in one condition" in issue
    (issue,) = issues(BASE + "    when: {wrd: cardio, equals: A}\n")
    assert "routes[0].when.wrd: unknown key (did you mean 'ward'?)" in issue


def test_a_plugin_route_key_and_its_check_in_eai_check(plugin: None) -> None:
    config = load_config_text(BASE + "    priority: 3\n    when: {ward: cardio, equals: A}\n")
    assert config.routes[0].model_dump()["priority"] == 3
    assert issues(BASE + "    priority: 3\n") == [
        "routes.yaml:14:15: routes[0].priority: priority needs a when"
    ]
    (issue,) = issues(BASE + "    priority: 12\n    when: {ward: cardio, equals: A}\n")
    assert issue.startswith("routes.yaml:14:15: routes[0].priority: "), issue


def test_without_the_plugin_its_keys_are_unknown() -> None:
    (issue,) = issues(BASE + "    priority: 3\n")
    assert "routes[0].priority: unknown key" in issue
    assert "ward" not in when_model().model_fields and "priority" not in route_model().model_fields


def test_a_failing_check_is_a_finding_not_a_crash(
    plugin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register_check(CheckSpec("broken", _broken, "test"))
    assert issues(BASE + "    priority: 3\n") == [
        "routes.yaml:1:1: (top level): the 'broken' check failed: RuntimeError: boom",
        "routes.yaml:14:15: routes[0].priority: priority needs a when",
    ]


def test_the_schema_describes_plugin_keys(plugin: None) -> None:
    from eai.config import config_json_schema

    defs = config_json_schema()["$defs"]
    assert {"ward", "weekday", "tag", "calling_ae", "field"} <= set(defs["When"]["properties"])
    assert {"priority", "coerce"} <= set(defs["Route"]["properties"])


def test_a_plugin_command_is_listed_and_runs(plugin: None) -> None:
    from eai.cli import cli

    runner = CliRunner()
    listed = runner.invoke(cli, ["--help"])
    assert listed.exit_code == 0
    assert "hello     Say hello." in listed.output
    assert "dicom     DICOM: C-ECHO and C-STORE" in listed.output
    ran = runner.invoke(cli, ["hello"])
    assert (ran.exit_code, ran.output) == (0, "hello from the plugin\n")


def test_two_plugins_cannot_take_one_key(plugin: None) -> None:
    clash = ConditionSpec("ward", str, Field(default=None), _ward, "another ward")
    with pytest.raises(ValueError, match="route condition 'ward' registered twice"):
        registry.register_condition(clash)
    registry.register_condition(WARD)  # the same spec again is harmless


def test_a_plugin_message_kind_in_message_type_patterns(plugin: None) -> None:
    config = load_config_text(BASE + "    when: {message_type: ['ECG^12', DICOM]}\n")
    assert config.routes[0].when is not None
    types = config.routes[0].when.message_types
    assert types is not None and "ECG^12" in types and "ECG^3" not in types
    with pytest.raises(ValueError, match=r"DICOM\^CT \(modality\), ECG\^12 \(lead count\)"):
        MessageTypeSet.of(["XDS^1234"])


def test_without_the_plugin_its_message_kind_is_refused() -> None:
    (issue,) = issues(BASE + "    when: {message_type: ['ECG^12']}\n")
    assert "routes[0].when.message_type[0]: 'ECG^12' is not a message type pattern" in issue
