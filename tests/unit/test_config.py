"""routes.yaml loading: the bundled file, every error with its file:line:column, env, schema."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
from pydantic import ValidationError

from eai import registry
from eai.config import (
    Config,
    EngineConfig,
    check_config,
    config_json_schema,
    config_model,
    load_config,
    load_config_text,
)
from eai.errors import ConfigError
from tests._config_types import BASE, connectors  # noqa: F401 - connectors: autouse fixture
from tests._paths import REPO


def issues(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "routes.yaml", env or {})
    return [str(issue) for issue in info.value.issues]


def only_issue(text: str, env: dict[str, str] | None = None) -> str:
    found = issues(text, env)
    assert len(found) == 1, found
    return found[0]


# -- the bundled file --------------------------------------------------------------


def test_bundled_routes_yaml_is_valid_without_env() -> None:
    config = load_config(REPO / "routes.yaml", env={})
    assert [listener.name for listener in config.listeners] == ["chu-x-adt"]
    listener = config.listeners[0].model_dump()
    assert listener["type"] == "mllp"
    assert listener["bind"] == "127.0.0.1:2575"
    assert listener["max_message_bytes"] == 10485760
    assert list(listener["allowed_senders"]) == ["CHU-X"]
    destination = config.destinations[0].model_dump()
    assert (destination["host"], destination["port"]) == ("127.0.0.1", 2576)
    assert destination["ack_timeout"] == 30.0
    assert config.destinations[0].retry.initial == 1.0
    assert config.destinations[0].retry.max == 600.0
    assert config.engine.data_dir == Path("./var")
    assert config.engine.database == "sqlite:///./var/eai.db"
    (route,) = config.routes
    assert (route.name, route.from_, route.to) == ("adt-to-dcc", ("chu-x-adt",), ("dcc",))
    assert route.when is not None and route.when.message_types is not None
    assert "ADT^A08" in route.when.message_types
    assert config.console is not None and config.console.bind == "127.0.0.1:8080"
    assert "ADT^A05" not in route.when.message_types


def test_bundled_routes_yaml_is_valid_with_env() -> None:
    env = {
        "EAI_DATA_DIR": "/srv/eai",
        "EAI_DATABASE_URL": "postgresql+psycopg://eai@db.example.org/eai",
        "ADT_PORT": "3575",
        "DCC_PORT": "3576",
    }
    config = load_config(str(REPO / "routes.yaml"), env=env)
    assert config.listeners[0].model_dump()["bind"] == "127.0.0.1:3575"
    assert config.destinations[0].model_dump()["port"] == 3576
    assert config.engine.data_dir == Path("/srv/eai")
    assert config.engine.database == "postgresql+psycopg://eai@db.example.org/eai"
    assert check_config(REPO / "routes.yaml", env=env) == []


def test_config_is_frozen() -> None:
    config = load_config_text(BASE, "routes.yaml", {})
    with pytest.raises(ValidationError):
        config.routes[0].name = "other"
    assert isinstance(config, Config)


# -- errors, each at its exact position --------------------------------------------


def test_unknown_key_points_at_the_key() -> None:
    text = BASE.replace("    bind:", "    bnd:")
    assert issues(text) == [
        "routes.yaml:2:5: listeners[0].bind: required key is missing",
        "routes.yaml:4:5: listeners[0].bnd: unknown key (did you mean 'bind'?)",
    ]


def test_unknown_top_level_key() -> None:
    assert issues(BASE + "rotues: []\n") == ["routes.yaml:14:1: rotues: unknown key"]


def test_bad_type_points_at_the_value() -> None:
    found = only_issue(BASE.replace("port: 2576", "port: abc"))
    assert found.startswith(
        "routes.yaml:9:11: destinations[0].port: Input should be a valid integer"
    )


def test_out_of_range_value() -> None:
    found = only_issue(BASE.replace("port: 2576", "port: 70000"))
    assert found.startswith("routes.yaml:9:11: destinations[0].port: Input should be less than")


def test_missing_required_points_at_the_mapping() -> None:
    text = BASE.replace("    host: 127.0.0.1\n", "")
    assert issues(text) == ["routes.yaml:6:5: destinations[0].host: required key is missing"]


def test_missing_type_and_unknown_type() -> None:
    assert issues(BASE.replace("    type: test-tcp\n    bind", "    bind")) == [
        "routes.yaml:2:5: listeners[0].type: required key is missing"
    ]
    found = only_issue(BASE.replace("type: test-tcp\n    bind", "type: tcp\n    bind"))
    assert found.startswith("routes.yaml:3:11: listeners[0].type: unknown listener type 'tcp':")
    assert "'test-tcp'" in found and "'test-dir'" in found


def test_discriminated_union_picks_the_model_by_type() -> None:
    text = BASE.replace(
        "listeners:\n", "listeners:\n  - name: drop\n    type: test-dir\n    path: 7\n"
    )
    assert issues(text) == ["routes.yaml:4:11: listeners[0].path: Input should be a valid string"]


def test_unknown_listener_and_destination_in_a_route() -> None:
    text = BASE.replace("from: [in-a]", "from: [in-x]").replace("to: [out-b]", "to: [out-c]")
    assert issues(text) == [
        "routes.yaml:12:12: routes[0].from[0]: unknown listener 'in-x' (did you mean 'in-a'?)",
        "routes.yaml:13:10: routes[0].to[0]: unknown destination 'out-c' (did you mean 'out-b'?)",
    ]


def test_unknown_destination_in_block_list() -> None:
    text = BASE.replace("to: [out-b]", "to:\n      - out-b\n      - dc")
    assert issues(text) == ["routes.yaml:15:9: routes[0].to[1]: unknown destination 'dc'"]


def test_duplicate_names() -> None:
    text = BASE.replace(
        "destinations:\n",
        "  - name: in-a\n    type: test-dir\n    path: /in\ndestinations:\n",
    ) + ("  - name: r1\n    from: [in-a]\n    to: [out-b]\n")
    assert issues(text) == [
        "routes.yaml:5:11: listeners[1].name: duplicate listener name 'in-a' (also listeners[0])",
        "routes.yaml:17:11: routes[1].name: duplicate route name 'r1' (also routes[0])",
    ]


def test_empty_to_is_an_error() -> None:
    found = only_issue(BASE.replace("to: [out-b]", "to: []"))
    assert found.startswith("routes.yaml:13:9: routes[0].to: Tuple should have at least 1 item")


def test_bad_regex() -> None:
    text = BASE + "    when:\n      field: PV1-2\n      matches: 'a(b'\n"
    found = only_issue(text)
    assert found.startswith(
        "routes.yaml:16:16: routes[0].when.matches: invalid regular expression: missing ),"
    )


def test_bad_duration() -> None:
    text = BASE.replace("port: 2576", "port: 2576\n    ack_timeout: 10x")
    assert issues(text) == [
        "routes.yaml:10:18: destinations[0].ack_timeout: invalid duration '10x': "
        "use a number of seconds or 30s, 10m, 500ms, 1h"
    ]


def test_bad_duration_in_nested_retry() -> None:
    text = BASE.replace("port: 2576", "port: 2576\n    retry: {initial: 1s, max: soon}")
    found = only_issue(text)
    assert found.startswith("routes.yaml:10:31: destinations[0].retry.max: invalid duration 'soon'")


def test_bad_hl7_path() -> None:
    text = BASE + "    when:\n      field: PV1_2\n      in: [I]\n"
    found = only_issue(text)
    assert found.startswith("routes.yaml:15:14: routes[0].when.field: invalid HL7 path 'PV1_2'")


def test_field_without_comparator_points_at_field() -> None:
    text = BASE + "    when:\n      any:\n        - field: PV1-2\n"
    assert issues(text) == [
        "routes.yaml:16:11: routes[0].when.any[0].field: "
        "'field' needs one of: in, equals, matches, exists"
    ]


def test_comparator_without_field_and_two_comparators() -> None:
    assert issues(BASE + "    when: {equals: I}\n") == [
        "routes.yaml:14:12: routes[0].when.equals: 'equals' needs 'field'"
    ]
    found = only_issue(BASE + "    when: {field: PV1-2, in: [I], exists: true}\n")
    assert found == (
        "routes.yaml:14:35: routes[0].when.exists: "
        "'field' takes exactly one of in, equals, matches, exists; got in, exists"
    )


def test_bad_message_type_pattern() -> None:
    text = BASE + "    when:\n      message_type: [ADT^A01, ADT-A02]\n"
    found = only_issue(text)
    assert found.startswith(
        "routes.yaml:15:31: routes[0].when.message_type[1]: 'ADT-A02' is not a message type"
    )


def test_unset_env_var_points_at_the_reference() -> None:
    text = BASE.replace("port: 2576", "port: ${OUT_PORT}").replace(
        "bind: 127.0.0.1:2575", "bind: 127.0.0.1:${IN_PORT}"
    )
    assert issues(text) == [
        "routes.yaml:4:21: listeners[0].bind: environment variable IN_PORT is not set "
        "(use ${IN_PORT:-default})",
        "routes.yaml:9:11: destinations[0].port: environment variable OUT_PORT is not set "
        "(use ${OUT_PORT:-default})",
    ]  # and no "Input should be a valid integer" for the unresolved port


def test_unset_env_var_in_quoted_multiline_value() -> None:
    text = BASE.replace("bind: 127.0.0.1:2575", 'bind: "127.0.0.1:\n      ${IN_PORT}"')
    assert issues(text)[0].startswith("routes.yaml:5:7: listeners[0].bind: environment variable")


def test_yaml_syntax_error() -> None:
    text = BASE.replace("    from: [in-a]", "    from: [in-a\n")
    found = only_issue(text)
    assert found == (  # at the unclosed '[', where the parser gave up after it
        "routes.yaml:12:11: invalid YAML: the list opened with '[' here is not closed: add "
        "']' after its last item (items are separated by ',') (parser: while parsing a flow "
        "sequence, expected ',' or ']', but got ':' at line 14, column 7)"
    )


def test_yaml_bad_indentation() -> None:
    found = only_issue("listeners:\n  - name: a\n   type: x\n")
    assert found.startswith("routes.yaml:3:4: invalid YAML: bad indentation: ")
    assert found.endswith("expected <block end>, but found '<block mapping start>')")


def test_duplicate_key_points_at_the_second_key() -> None:
    text = BASE.replace("port: 2576", "port: 2576\n    port: 2577")
    assert issues(text) == [
        "routes.yaml:10:5: destinations[0].port: duplicate key (first given on line 9)"
    ]


def test_empty_and_not_a_mapping() -> None:
    assert only_issue("").startswith("routes.yaml:1:1: the file is empty")
    assert only_issue("# only a comment\n").startswith("routes.yaml:1:1: the file is empty")
    assert only_issue("- a\n- b\n").startswith("routes.yaml:1:1: the top level is not a mapping")
    assert only_issue("just text\n").startswith("routes.yaml:1:1: the top level is not a mapping")


def test_wrong_shapes() -> None:
    assert issues("listeners: {name: a}\n") == ["routes.yaml:1:12: listeners: expected a list"]
    assert issues("routes:\n  - just-a-name\n") == [
        "routes.yaml:2:5: routes[0]: expected a mapping"
    ]


def test_aliases_and_merge_keys_are_followed() -> None:
    text = dedent(
        """\
        destinations:
          - &base
            name: out-b
            type: test-tcp
            host: 127.0.0.1
            port: 2576
          - <<: *base
            name: out-c
            port: nan
        """
    )
    found = only_issue(text)
    assert found.startswith("routes.yaml:9:11: destinations[1].port: Input should be a valid")


# -- environment substitution --------------------------------------------------------


def test_env_substitution_forms() -> None:
    text = dedent(
        """\
        engine:
          data_dir: ${DIR:-./data}
          node_id: node-${NODE}
          database: ${DB:-sqlite:///x.db}
        listeners:
          - name: in-a
            type: test-tcp
            bind: '$${literal}:${PORT:-1}'
            max_message_bytes: ${MAX:-2048}
        """
    )
    config = load_config_text(text, "routes.yaml", {"NODE": "7", "DB": ""})
    assert config.engine.data_dir == Path("./data")
    assert config.engine.node_id == "node-7"
    assert config.engine.database == "sqlite:///x.db"  # empty counts as unset with :-
    listener = config.listeners[0].model_dump()
    assert listener["bind"] == "${literal}:1"
    assert listener["max_message_bytes"] == 2048
    env = {"NODE": "b", "MAX": "4096", "PORT": "9"}
    config = load_config_text(text, "routes.yaml", env)
    assert config.listeners[0].model_dump()["max_message_bytes"] == 4096
    assert config.listeners[0].model_dump()["bind"] == "${literal}:9"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAI_TEST_NODE", "from-environ")
    config = load_config_text("engine:\n  node_id: ${EAI_TEST_NODE}\n", "routes.yaml")
    assert config.engine.node_id == "from-environ"


def test_keys_are_not_substituted() -> None:
    assert issues("engine:\n  ${X}: 1\n", {"X": "node_id"}) == [
        "routes.yaml:2:3: engine.${X}: unknown key"
    ]


def test_malformed_reference() -> None:
    found = only_issue("engine:\n  node_id: a${B\n")
    assert found == (
        "routes.yaml:2:13: engine.node_id: malformed ${...}: "
        "use ${NAME} or ${NAME:-default} ($${ for a literal)"
    )


# -- engine section ------------------------------------------------------------------


def test_engine_defaults() -> None:
    engine = EngineConfig()
    assert engine.database == "sqlite:///./var/eai.db"
    assert (engine.pipeline_batch, engine.delivery_batch, engine.lease) == (200, 200, 60.0)
    assert engine.effective_node_id()
    assert EngineConfig(node_id="n1").effective_node_id() == "n1"
    assert EngineConfig(data_dir=Path("/d")).database == "sqlite:////d/eai.db"
    assert "database" not in repr(EngineConfig(database="postgresql+psycopg://u:pw@h/db"))


def test_engine_database_scheme_and_lease() -> None:
    text = "engine:\n  database: mysql://u:secret@h/db\n  lease: 2m\n"
    found = only_issue(text)
    assert found.startswith("routes.yaml:2:13: engine.database: use sqlite:///")
    assert "secret" not in found
    config = load_config_text("engine:\n  lease: 2m\n  pipeline_batch: 50\n", "r.yaml", {})
    assert (config.engine.lease, config.engine.pipeline_batch) == (120.0, 50)


# -- the model used directly ---------------------------------------------------------


def test_cross_checks_also_guard_the_model() -> None:
    data = {
        "routes": [
            {"name": "r", "from": ["a"], "to": ["b"]},
        ]
    }
    with pytest.raises(ValidationError, match="unknown listener 'a'"):
        Config.model_validate(data)


def test_registry_change_changes_the_model() -> None:
    text = "listeners:\n  - {name: x, type: test-dir, path: /in}\n"
    assert load_config_text(text, "r.yaml", {}).listeners[0].type == "test-dir"
    registry._listeners.pop("test-dir")
    assert issues(text)[0].startswith("routes.yaml:2:21: listeners[0].type: unknown listener type")


# -- JSON Schema ---------------------------------------------------------------------


def test_console_section() -> None:
    config = load_config(REPO / "routes.yaml", env={"CONSOLE_PORT": "9090"})
    assert config.console is not None and config.console.bind == "127.0.0.1:9090"
    assert config.console.tls is None and config.console.lock_after == 5
    assert load_config_text("engine: {}\n").console is None  # absent: not served
    with pytest.raises(ConfigError, match="outside loopback"):
        load_config_text("console:\n  bind: 0.0.0.0:8080\n")


def test_json_schema() -> None:
    schema = config_json_schema()
    text = json.dumps(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "eai routes.yaml"
    for name in ("test-tcp", "test-dir", "mllp"):
        assert f'"{name}"' in text
    assert set(schema["properties"]) == {
        "engine",
        "listeners",
        "destinations",
        "routes",
        "identity",
        "alerts",
        "audit",
        "metrics",
        "console",
    }
    listeners = schema["properties"]["listeners"]["items"]
    assert listeners["discriminator"]["propertyName"] == "type"
    defs = schema["$defs"]
    assert {"name", "from", "when", "to", "description", "validate_structure"} <= set(
        defs["Route"]["properties"]
    )
    assert {"in", "all", "any", "not", "field", "matches"} <= set(defs["When"]["properties"])
    port = defs["TcpDestination"]["properties"]["port"]
    assert {"$ref": "#/$defs/EnvReference"} in port["anyOf"]
    assert defs["TcpDestination"]["additionalProperties"] is False


def test_json_schema_describes_mllp_fields() -> None:
    defs = config_json_schema()["$defs"]
    listener = next(
        d
        for d in defs.values()
        if d.get("properties", {}).get("type", {}).get("const") == "mllp"
        and "bind" in d["properties"]
    )
    assert {"name", "type", "bind", "max_message_bytes", "allowed_senders"} <= set(
        listener["properties"]
    )
    destination = next(
        d
        for d in defs.values()
        if d.get("properties", {}).get("type", {}).get("const") == "mllp"
        and "host" in d["properties"]
    )
    assert {"host", "port", "ack_timeout", "retry"} <= set(destination["properties"])


# -- network listeners open to anyone (issue 16, point 7) -------------------------------

KEY_DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _listener(text: str) -> str:
    return "listeners:\n" + dedent(text).strip("\n").replace("\n", "\n    ").join(["  - ", "\n"])


def test_mllp_listener_outside_loopback_needs_tls_or_networks() -> None:
    text = _listener("name: adt\ntype: mllp\nbind: 0.0.0.0:2575")
    found = only_issue(text)
    assert found.startswith("routes.yaml:4:11: listeners[0].bind: listens on 0.0.0.0:2575")
    assert "insecure: true" in found and "tls" in found
    ok = [
        "insecure: true",
        "tls: {cert: s.pem, key: s.key}",
    ]
    if "allowed_networks" in registry.listeners()["mllp"].config_model.model_fields:
        ok.append("allowed_networks: [10.1.2.0/24]")
    for extra in ok:
        assert load_config_text(text + f"    {extra}\n", "routes.yaml", {}).listeners


@pytest.mark.parametrize("bind", ["127.0.0.1:2575", "127.8.9.1:0", "[::1]:2575", "localhost:1"])
def test_loopback_listeners_need_nothing(bind: str) -> None:
    for kind in ("mllp", "http"):
        text = _listener(f"name: a\ntype: {kind}\nbind: '{bind}'")
        assert load_config_text(text, "routes.yaml", {}).listeners[0].insecure is False


def test_http_listener_outside_loopback_needs_a_sender_control() -> None:
    text = _listener("name: cda\ntype: http\nbind: '[::]:8443'")
    found = only_issue(text)
    assert found.startswith("routes.yaml:4:11: listeners[0].bind: listens on [::]:8443 and")
    assert "accepts documents from anyone" in found
    tls = "tls: {cert: s.pem, key: s.key, client_ca: ca.pem"
    assert "accepts documents from anyone" in only_issue(text + f"    {tls}}}\n")  # TLS alone
    for extra in (
        "insecure: true",
        "allowed_networks: [10.1.2.0/24, 192.0.2.7]",
        f"{tls}, require_client_cert: true}}",
        f"{tls}}}\n    allowed_subjects: [gam.chu-x]",
        f"{tls}}}\n    api_keys: [{{name: lab-x, sha256: {KEY_DIGEST}}}]",
        f"{tls}}}\n    oauth2: {{issuer: 'https://idp', audience: eai, jwks_file: k.json}}",
    ):
        assert load_config_text(text + f"    {extra}\n", "routes.yaml", {}).listeners, extra


def test_http_api_keys_outside_loopback_need_tls() -> None:
    text = _listener(
        f"name: cda\ntype: http\nbind: 10.0.0.1:8080\napi_keys: [{{name: x, sha256: {KEY_DIGEST}}}]"
    )
    found = only_issue(text)
    assert found.startswith("routes.yaml:5:15: listeners[0].api_keys: bearer credentials on 10.0")
    assert load_config_text(text + "    insecure: true\n", "routes.yaml", {}).listeners
    oauth = "oauth2: {issuer: 'https://idp', audience: eai, jwks_file: k.json}"
    text = _listener(f"name: cda\ntype: http\nbind: 10.0.0.1:8080\n{oauth}")
    assert "listeners[0].oauth2: bearer credentials" in only_issue(text)


def test_host_names_other_than_localhost_count_as_exposed() -> None:
    text = _listener("name: adt\ntype: mllp\nbind: 'eai.chu-x.example:2575'")
    assert "listens on eai.chu-x.example:2575 without tls" in only_issue(text)


def test_exposure_checked_on_the_model_too() -> None:
    with pytest.raises(ValidationError, match="listens on 0.0.0.0:2575"):
        config_model().model_validate(
            {"listeners": [{"name": "adt", "type": "mllp", "bind": "0.0.0.0:2575"}]}
        )


def test_every_bundled_config_passes_check() -> None:
    paths = [REPO / "routes.yaml", *sorted((REPO / "examples").glob("*.yaml"))]
    assert len(paths) > 1
    for path in paths:
        assert load_config(path, {}).listeners, path
