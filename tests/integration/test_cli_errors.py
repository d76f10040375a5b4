"""CLI errors are one clear line on stderr and a non-zero exit (subprocess, as a user runs it)."""

import os
import subprocess
import sys
from pathlib import Path

from tests._database import database_url
from tests._paths import REPO


def _eai(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EAI_DATA_DIR": str(cwd / "var"),
        "EAI_DATABASE_URL": database_url(cwd / "var" / "eai.db"),
    }
    return subprocess.run(
        [sys.executable, "-c", "from eai.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_errors_are_one_line(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text((REPO / "routes.yaml").read_text())
    closed = tmp_path / "closed.yaml"  # a journal server that refuses (port 9: discard)
    closed.write_text("engine: {database: 'postgresql+psycopg://eai@127.0.0.1:9/eai'}\n")
    cases = [
        (("queue", "pause", "nope", "-c", str(routes)), 3, "unknown destination 'nope'"),
        (("messages", "show", "999", "-c", str(routes)), 3, "no message with id 999"),
        (("resend", "42", "-c", str(routes)), 3, "no delivery with id 42"),
        (("messages", "list", "-c", str(tmp_path / "missing.yaml")), 2, "missing.yaml: no such"),
        (("messages", "list", "-c", str(closed)), 4, "cannot open the journal"),
        (("send", "127.0.0.1:9", str(tmp_path / "nofile.hl7")), 1, "nofile.hl7:1:1:"),
    ]
    for args, code, text in cases:
        res = _eai(*args, cwd=tmp_path)
        assert res.returncode == code, (args, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and text in lines[0], (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_check_prints_file_line_column(tmp_path):
    bad = tmp_path / "routes.yaml"
    bad.write_text("listeners:\n  - name: a\n    type: mllp\n    bnd: x\n")
    res = _eai("check", "-c", str(bad), cwd=tmp_path)
    assert res.returncode == 1
    assert f"{bad}:4:5: listeners[0].bnd: unknown key" in res.stderr
    ok = _eai("check", "-c", str(REPO / "routes.yaml"), cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok"


def test_run_refuses_an_invalid_file_with_the_same_lines(tmp_path):
    bad = tmp_path / "routes.yaml"
    bad.write_text("listeners:\n  - name: a\n    type: mllp\n    bnd: x\n")
    check = _eai("check", "-c", str(bad), cwd=tmp_path)
    run = _eai("run", "-c", str(bad), cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.splitlines() == check.stderr.splitlines()
    assert not (tmp_path / "var").exists()  # refused before touching anything
