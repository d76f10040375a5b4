"""``eai`` starts without loading what its commands need: ``import eai.cli`` and ``eai --help``
import click and nothing heavy (fresh interpreters), yet list every command, each with the
line it would show once imported. No timing here: bench/cli_latency.py measures."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import eai.cli
from eai import plugins
from eai.cli import COMMANDS, cli
from eai.cli._lazy import LazyGroup, load_target
from tests._paths import REPO

pytestmark = pytest.mark.integration

HEAVY = ("sqlalchemy", "pydicom", "pynetdicom", "lxml", "fhir.resources", "hl7apy")
"""What issue 23 names: none of them is imported by ``import eai.cli`` or ``eai --help``."""

ALSO_LIGHT = ("pydantic", "yaml", "httpx", "cryptography", "eai.config", "eai.store")
"""Not named by the issue, kept out as well (they are most of a command's start-up)."""


def _modules_after(code: str) -> tuple[set[str], str]:
    """The modules loaded by ``code`` in a fresh interpreter, and what it printed."""
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)), file=sys.stderr)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stderr.split()), done.stdout


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(
        m for m in loaded for h in (*HEAVY, *ALSO_LIGHT) if m == h or m.startswith(h + ".")
    )


def test_import_eai_cli_loads_nothing_heavy() -> None:
    loaded, _ = _modules_after("import eai.cli")
    assert "click" in loaded and "eai.cli" in loaded
    assert _heavy(loaded) == []


def test_eai_help_loads_nothing_heavy_and_lists_every_command() -> None:
    loaded, out = _modules_after("from eai.cli import main\nmain(['--help'])")
    assert _heavy(loaded) == []
    assert not any(m.startswith(("eai.cli._support", "eai.cli._engine")) for m in loaded)
    listed = out.split("Commands:", 1)[1].split("Exit codes:", 1)[0]
    names = {line.split()[0] for line in listed.splitlines() if line.strip()}
    top_plugins = {path for path, _, _ in plugins.COMMANDS if " " not in path}
    assert names == set(COMMANDS) | top_plugins | _module_level_commands()


def _module_level_commands() -> set[str]:
    """Every top-level command defined in eai/cli's modules (a subcommand of one of their
    groups aside): a command added to a module and not to eai.cli.COMMANDS fails here."""
    commands: list[click.Command] = []
    for info in pkgutil.iter_modules(eai.cli.__path__):
        module = importlib.import_module(f"eai.cli.{info.name}")
        commands += [v for v in vars(module).values() if isinstance(v, click.Command)]
    nested = {
        id(sub)
        for group in commands
        if isinstance(group, click.Group)
        for sub in group.commands.values()
    }
    return {c.name for c in commands if id(c) not in nested and c.name}


def test_each_declared_line_is_the_command_s_own() -> None:
    """``eai --help`` from the declared summaries reads exactly as from the commands."""
    lazy = LazyGroup("eai", lazy=COMMANDS, plugin_path=None)
    loaded = click.Group("eai", commands={n: load_target(t) for n, (t, _) in COMMANDS.items()})
    runner = CliRunner()
    for width in (80, 200):
        declared = runner.invoke(lazy, ["--help"], terminal_width=width).output
        real = runner.invoke(loaded, ["--help"], terminal_width=width).output
        assert declared == real


def test_a_subcommand_s_help_imports_it() -> None:
    result = CliRunner().invoke(cli, ["queue", "--help"])
    assert result.exit_code == 0 and "list" in result.output and "pause" in result.output


def test_messages_list_reads_the_journal_while_a_route_is_being_fixed(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"engine: {{data_dir: {tmp_path / 'var'}, database: 'sqlite:///{tmp_path}/var/eai.db'}}\n"
        "routes:\n  - name: r\n    from: [nowhere]\n    too: [x]\n"
    )
    listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(routes)])
    assert listed.exit_code == 0, listed.output
    assert "no message" in listed.output
    checked = subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "check", "-c", str(routes)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1 and f"{routes}:5:5: routes[0].too: unknown key" in (
        checked.stderr
    )


def test_messages_list_still_reports_the_engine_section_s_mistakes(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("engine:\n  data_dir: x\n  databse: y\n")
    done = subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "messages", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "routes.yaml:3:3: engine.databse: unknown key (did you mean 'database'?)"
    ]
    assert not (tmp_path / "x").exists()


def test_messages_list_over_hl7_messages_imports_no_plugin(tmp_path: Path) -> None:
    from eai.config import load_config
    from eai.messages import JournalEntry
    from eai.store import Store, insert_entries, utcnow

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"engine: {{data_dir: {tmp_path / 'var'}, database: 'sqlite:///{tmp_path}/var/eai.db'}}\n"
    )
    config = load_config(routes)
    store = Store(config.engine.database, Path(config.engine.data_dir))
    entry = JournalEntry(
        "chu-x", b"MSH|^~\\&|A|CHU-X|||20260101||ADT^A01|C1|P|2.5\r", utcnow(), control_id="C1"
    )
    with store.engine.begin() as conn:
        insert_entries(conn, store.cipher, [entry])
    store.engine.dispose()

    code = f"from eai.cli import main\nmain(['messages', 'list', '--json', '-c', {str(routes)!r}])"
    loaded, out = _modules_after(code)
    assert not sorted(m for m in loaded if m.split(".")[0] in ("connectors", "dicom_router"))
    assert not _heavy(loaded & {"pydicom", "pynetdicom", "lxml", "httpx"})
    [row] = json.loads(out)
    assert row["control_id"] == "C1"
    for _, keys in plugins.LISTINGS:
        assert all(row[key] is None for key in keys)  # every key, null for HL7 v2


def _journal_with_one_message(tmp_path: Path, engine: str) -> Path:
    """A routes.yaml whose ``engine`` section is ``engine`` (YAML flow text) and a journal
    holding one HL7 v2 message; its path."""
    from eai.config import load_config
    from eai.messages import JournalEntry
    from eai.store import Store, insert_entries, utcnow

    routes = tmp_path / "routes.yaml"
    routes.write_text(f"engine: {engine}\n")
    config = load_config(routes)
    store = Store(config.engine.database, Path(config.engine.data_dir))
    entry = JournalEntry(
        "chu-x", b"MSH|^~\\&|A|CHU-X|||20260101||ADT^A01|C1|P|2.5\r", utcnow(), control_id="C1"
    )
    with store.engine.begin() as conn:
        insert_entries(conn, store.cipher, [entry])
    store.engine.dispose()
    return routes


def test_messages_list_reads_a_plain_engine_section_without_pydantic(tmp_path: Path) -> None:
    """``database`` and ``data_dir`` are read with YAML alone: no pydantic, no config model,
    no cryptography (nothing is decrypted), and of the journal only the modules a listing
    uses (not the claims, plans, outbox, replay, cross-references)."""
    var = tmp_path / "var"
    routes = _journal_with_one_message(
        tmp_path, f"{{data_dir: {var}, database: 'sqlite:///{var}/eai.db'}}"
    )
    code = f"from eai.cli import main\nmain(['messages', 'list', '--json', '-c', {str(routes)!r}])"
    loaded, out = _modules_after(code)
    assert [row["control_id"] for row in json.loads(out)] == ["C1"]
    assert not [m for m in loaded if m.split(".")[0] in ("pydantic", "cryptography")]
    assert sorted(m for m in loaded if m.startswith("eai.config.")) == [
        "eai.config._journal",
        "eai.config._yaml",
    ]
    unused = {"_claims", "_plans", "_outbox", "_support_actions", "_support_queries", "_xref"}
    unused |= {"_journal", "_anomalies", "_audit"}  # the write path, anomalies, audit trail
    assert not {m.removeprefix("eai.store.") for m in loaded if m.startswith("eai.store.")} & unused


def test_messages_list_on_sqlite_imports_no_sqlalchemy(tmp_path: Path) -> None:
    """Issue 23's ``eai messages list`` budget, held by structure: on a SQLite journal the
    listing runs through ``sqlite3`` (``eai.store._sqlite_read``), so neither SQLAlchemy
    (its core, ORM, dialects or asyncio extension) nor what it pulls in (``asyncio``,
    ``importlib.metadata``) is imported; of the journal, only the reader's modules."""
    var = tmp_path / "var"
    routes = _journal_with_one_message(
        tmp_path, f"{{data_dir: {var}, database: 'sqlite:///{var}/eai.db'}}"
    )
    code = f"from eai.cli import main\nmain(['messages', 'list', '-c', {str(routes)!r}])"
    loaded, out = _modules_after(code)
    assert "C1" in out
    heavy = ("sqlalchemy", "asyncio", "importlib.metadata", "cryptography", "pydantic")
    assert sorted(m for m in loaded for h in heavy if m == h or m.startswith(h + ".")) == []
    assert sorted(m for m in loaded if m.startswith("eai.store")) == [
        "eai.store",
        "eai.store._crypto",
        "eai.store._listing_sql",
        "eai.store._listing_views",
        "eai.store._sqlite_file",
        "eai.store._sqlite_read",
    ]


@pytest.mark.parametrize(
    "engine",
    [
        "{data_dir: ./x, pipeline_batch: 0}",  # another key: validated, its mistake said
        "{data_dir: ./x, database: 'mysql://h/db'}",  # a value the light reading refuses
    ],
)
def test_messages_list_validates_any_other_engine_section(tmp_path: Path, engine: str) -> None:
    (tmp_path / "routes.yaml").write_text(f"engine: {engine}\n")
    done = subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", "messages", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("routes.yaml:1:") and "engine." in line
    assert not (tmp_path / "x").exists()


def test_journal_location_follows_the_engine_config_defaults(tmp_path: Path) -> None:
    from eai.config import EngineConfig, journal_location, load_engine_config

    routes = tmp_path / "routes.yaml"
    cases = {
        "listeners: []\n": True,
        "engine:\n  data_dir: ${D:-./elsewhere}\n": True,
        "engine:\n  database: ${URL}\n": True,
        "engine: {data_dir: /srv/x/, database: 'postgresql+psycopg://u@h/db'}\n": True,
        "engine:\n  data_dir: ${UNSET}\n": False,
        "engine:\n  data_dir: [a]\n": False,
        "engine:\n  data_dir: a\n  data_dir: b\n": False,
        "engine: [\n": False,
        "engine:\n  node_id: n1\n": False,
    }
    env = {"URL": "sqlite:////tmp/u.db"}
    for text, plain in cases.items():
        routes.write_text(text)
        where = journal_location(routes, env)
        assert (where is not None) is plain, text
        if where is not None:
            engine: EngineConfig = load_engine_config(routes, env)
            assert (where.database, where.data_dir) == (engine.database, engine.data_dir), text


MLLP_ONLY = """\
engine: {{data_dir: {var}}}
listeners:
  - {{name: adt, type: mllp, bind: "127.0.0.1:2575"}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: 2576}}
routes:
  - {{name: r, from: [adt], to: [{to}]}}
"""


def _check(routes: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """``eai check FILE`` in a fresh interpreter: the modules it loaded, and the run."""
    script = (
        "import sys\nfrom eai.cli import main\ntry:\n    main(['check', sys.argv[1]])\n"
        "finally:\n    print('\\n'.join(sorted(sys.modules)), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(routes)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return set(done.stderr.split()), done


def test_check_loads_only_the_plugins_of_the_types_the_file_names(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(MLLP_ONLY.format(var=tmp_path / "var", to="dcc"))
    loaded, done = _check(routes)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
    assert "connectors.mllp" in loaded
    plugins_loaded = {name for name in plugins.BUILTIN if name in loaded}
    assert plugins_loaded == {"connectors.mllp"}
    heavy = ("dicom_router", "pydicom", "pynetdicom", "httpx", "signxml", "sqlalchemy")
    assert not [m for m in loaded if m.split(".")[0] in heavy]


def test_check_of_an_invalid_file_answers_with_every_plugin_loaded(tmp_path: Path) -> None:
    """A finding makes the check run again with all the plugins, so a hint may name a
    type or a destination the file's own types do not bring."""
    routes = tmp_path / "routes.yaml"
    text = MLLP_ONLY.format(var=tmp_path / "var", to="dcc").replace(
        "type: mllp, host", "type: dicomm, host"
    )
    routes.write_text(text)
    loaded, done = _check(routes)
    assert done.returncode == 1
    assert "dicom_router" in loaded
    [issue] = [line for line in done.stderr.splitlines() if line.startswith(str(routes))]
    assert issue.startswith(f"{routes}:5:") and "'dicom'" in issue, issue


def test_plugin_types_are_those_each_module_registers() -> None:
    """eai.plugins.TYPES, which ``eai check`` loads by, is what each module registers
    once imported alone (in a fresh interpreter each): the light modules TYPES names, and
    each module of BUILTIN through the TYPES modules it imports."""
    for module in dict.fromkeys((*plugins.BUILTIN, *plugins.TYPES.values())):
        code = (
            "import json, importlib\nfrom eai import plugins, registry\n"
            f"importlib.import_module({module!r})\n"
            f"with plugins.only([{module!r}]):\n"
            "    print(json.dumps([sorted(registry.listeners()), sorted(registry.destinations())]))"
        )
        loaded, out = _modules_after(code)
        listeners, destinations = json.loads(out)
        declared = {kind for kind, name in plugins.TYPES.items() if name in loaded}
        registered = {("listener", t) for t in listeners}
        registered |= {("destination", t) for t in destinations}
        assert registered == declared, module
        assert any(name == module for name in plugins.TYPES.values()) or module in plugins.BUILTIN
    for name in plugins.TYPES.values():  # each light module is one a bundled plugin loads
        assert any(_loads(builtin, name) for builtin in plugins.BUILTIN), name


def _loads(module: str, other: str) -> bool:
    loaded, _ = _modules_after(f"import {module}")
    return other in loaded


def test_check_of_a_dicom_file_imports_no_dicom_network_code() -> None:
    """The DICOM types' settings are validated without pynetdicom nor the SCP, SCU and
    content modules (pydicom's data dictionary only, for the tag keywords the file names)."""
    loaded, done = _check(REPO / "examples" / "dicom-routes.yaml")
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
    assert "dicom_router.registration" in loaded
    network = ("pynetdicom", "dicom_router.scp", "dicom_router.forward", "dicom_router.content")
    assert not [m for m in loaded if m.split(".")[0] in network or m in network]
    assert not [m for m in loaded if m.split(".")[0] in ("httpx", "signxml", "lxml", "connectors")]


def test_check_of_a_fhir_destination_imports_no_http_client(tmp_path: Path) -> None:
    """The ``fhir`` destination's settings are validated from its config model alone:
    httpx (and the sending code) load when the engine builds the destination."""
    routes = tmp_path / "routes.yaml"
    text = MLLP_ONLY.format(var=tmp_path / "var", to="scad").replace(
        "port: 2576}",
        "port: 2576}\n  - {name: scad, type: fhir, base_url: http://127.0.0.1:9/fhir}",
    )
    routes.write_text(text.replace("to: [scad]}", "to: [scad], map: auto}"))
    loaded, done = _check(routes)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
    assert "connectors.fhir.registration" in loaded
    assert not [m for m in loaded if m.split(".")[0] == "httpx"]
    assert "connectors.fhir.destination" not in loaded


NOT_FOR_CHECK_DMP = ("signxml", "httpx", "eai.cda", "eai.xds._header", "connectors.dmp.destination")
"""What sends to the DMP (the VIHF's XML signature, the HTTP client, the CDA reader, the
destination): ``eai check`` validates a ``dmp`` destination's settings without any of it."""


def _any_of(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded for n in names if m == n or m.startswith(n + "."))


def test_check_of_the_national_example_imports_no_xml_signature() -> None:
    """examples/national-routes.yaml (its variables at their defaults: ``eai check`` opens
    no certificate) is checked with the ``dmp`` type's light registration: no signxml."""
    loaded, done = _check(REPO / "examples" / "national-routes.yaml")
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
    assert "connectors.dmp.registration" in loaded
    assert _any_of(loaded, ("signxml", "connectors.dmp._vihf", "connectors.dmp.destination")) == []


def test_check_of_a_dmp_destination_imports_no_sending_code(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    text = MLLP_ONLY.format(var=tmp_path / "var", to="dmp").replace(
        "port: 2576}",
        "port: 2576}\n  - {name: dmp, type: dmp, url: https://dmp.invalid/repository,"
        " tls: {ca: ca.pem, cert: c.pem, key: c.key}, sign_cert: seal.pem, sign_key: seal.key,"
        " source_id: 1.2.250.1.999.1.1, structure_id: '1120459876',"
        " activity_sector: SA25^1.2.250.1.71.4.2.4, homologation_id: HOMOL-TEST}",
    )
    routes.write_text(text)
    loaded, done = _check(routes)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
    assert "connectors.dmp.registration" in loaded
    assert _any_of(loaded, NOT_FOR_CHECK_DMP) == []


def test_the_engine_module_loads_no_metrics_certificates_or_postgresql_dialect() -> None:
    """``eai run`` imports ``eai.engine``: prometheus_client and the certificate gauges'
    ``cryptography.x509`` load with the metrics endpoint (a ``metrics:`` block), the
    certificate expiry reader's at its first check, SQLAlchemy's PostgreSQL dialect when
    a node registers or an audit chain starts on PostgreSQL."""
    loaded, _ = _modules_after("import eai.engine")
    assert "eai.engine" in loaded
    late = ("prometheus_client", "cryptography.x509", "sqlalchemy.dialects.postgresql")
    assert sorted(m for m in loaded for h in late if m == h or m.startswith(h + ".")) == []
