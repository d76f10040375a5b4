"""The walkthroughs of the README and of examples/*.yaml, command by command, as written.

Each runs in a directory laid out like a fresh clone (``routes.yaml``, ``examples/``),
with the engine, the sinks and the stand-ins as subprocesses on 127.0.0.1; only the
ports differ, through the environment variables the examples already read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from standins.net import free_port
from tests._paths import HL7V2, REPO
from tests._proc import EAI, wait_port

pytestmark = pytest.mark.integration

A01 = str(HL7V2 / "pamfr_a01_admission.er7")  # MSH-10 3975, patient 000003
A03 = str(HL7V2 / "pamfr_a03_sortie.er7")  # MSH-10 3995, the same patient


class Clone:
    """A directory laid out like the clone, and the environment of the walkthrough."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        shutil.copy(REPO / "routes.yaml", root / "routes.yaml")
        shutil.copytree(REPO / "examples", root / "examples")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
        self.env.update(env, PYTHONUNBUFFERED="1")
        self.stack = ExitStack()

    def eai(self, *args: str, ok: bool = True) -> str:
        """Runs one ``eai`` command to its end; its stdout (and stderr)."""
        done = subprocess.run(
            [*EAI, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout + done.stderr

    def start(self, name: str, args: Sequence[str], eai: bool = True) -> Peer:
        """A long-running process (engine, sink, stand-in), stopped at the end."""
        peer = Peer(name, [*EAI, *args] if eai else list(args), self)
        self.stack.callback(peer.stop)
        return peer


class Peer:
    def __init__(self, name: str, argv: list[str], clone: Clone) -> None:
        self.name = name
        self.log = clone.root / f"{name}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            argv,
            cwd=clone.root,
            env=clone.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return self.text()
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.text()}"
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {needle!r} within {timeout} s:\n{self.text()}")

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        alive = lambda: self.proc.poll() is None  # noqa: E731
        assert wait_port(port, timeout, alive), f"{self.name} not listening:\n{self.text()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@contextmanager
def clone(tmp_path: Path, **env: str) -> Iterator[Clone]:
    c = Clone(tmp_path, **env)
    with c.stack:
        yield c


def _delivery(rows: list[dict[str, object]], destination: str) -> dict[str, object]:
    for row in rows:
        if row["destination"] == destination:
            return row
    raise AssertionError(f"no {destination} in {rows}")


def test_readme_quick_start_and_test_feed(tmp_path: Path) -> None:
    adt, dcc = free_port(), free_port()
    console = free_port()  # the bundled file serves the console (CONSOLE_PORT, default 8080)
    with clone(tmp_path, ADT_PORT=str(adt), DCC_PORT=str(dcc), CONSOLE_PORT=str(console)) as c:
        assert c.eai("check", "routes.yaml").strip() == "ok"  # routes.yaml's header
        assert c.eai("check").strip() == "ok"
        assert "not both" in c.eai("check", "-c", "routes.yaml", "routes.yaml", ok=False)
        sink = c.start("dcc-sink", ["sink", "mllp", "--port", str(dcc)])
        sink.wait_for("listening")
        c.start("engine", ["run"]).wait_port(adt)

        assert "MSA|AA|3975" in c.eai("send", f"127.0.0.1:{adt}", A01)
        (row,) = json.loads(c.eai("messages", "list", "--json"))
        assert row["status"] == "rejected"  # production listener: test INS refused
        # sent again: a retransmission, answered as before, shown on the original
        assert "MSA|AA|3975" in c.eai("send", f"127.0.0.1:{adt}", A01)
        assert len(json.loads(c.eai("messages", "list", "--json"))) == 1
        assert "retransmitted" in c.eai("messages", "show", str(row["id"]))

        # the README's test_feed step: a copy with test_feed, the message replayed through it
        text = (c.root / "routes.yaml").read_text()
        senders = "    allowed_senders: [CHU-X]"
        assert senders in text
        copy = text.replace(senders, senders + "\n    test_feed: true", 1)
        (c.root / "copy.yaml").write_text(copy)
        out = c.eai("replay", str(row["id"]), "--yes", "-c", "copy.yaml")
        assert "processed, queued to dcc" in out
        sink.wait_for("ADT^A01^ADT_A01 3975 ")
        show = c.eai("messages", "show", str(row["id"]))
        assert "replayed" in show and "copy.yaml sha256:" in show


def test_identity_example_walkthrough(tmp_path: Path) -> None:
    ports = {n: free_port() for n in ("ADT", "DCC", "DMP", "SMTP", "IDENTITY")}
    env = {f"{n}_PORT": str(p) for n, p in ports.items()}
    cfg = ["-c", "examples/identity-routes.yaml"]
    with clone(tmp_path, IDENTITY_RETRY="1s", **env) as c:
        assert c.eai("check", "examples/identity-routes.yaml").strip() == "ok"
        dcc = c.start("dcc", ["sink", "mllp", "--port", env["DCC_PORT"]])
        dmp = c.start("dmp", ["sink", "mllp", "--port", env["DMP_PORT"]])
        smtp = c.start("smtp", ["sink", "smtp", "--port", env["SMTP_PORT"]])
        for sink in (dcc, dmp, smtp):
            sink.wait_for("listening")
        c.start("engine", ["run", *cfg]).wait_port(ports["ADT"])

        # 1. the identity server is down
        assert "MSA|AA|3975" in c.eai("send", f"127.0.0.1:{ports['ADT']}", A01)
        dcc.wait_for("ADT^A01^ADT_A01 3975 ")
        smtp.wait_for("To: exploitation@grades.example")
        smtp.wait_for("injoignable")
        queues = json.loads(c.eai("queue", "list", "--json", *cfg))
        assert _delivery(queues, "dmp-gateway")["held"] == 1
        assert "3975" not in dmp.text()

        # 2. its stand-in starts: the held delivery goes
        standin = c.start(
            "standin",
            [
                "identity",
                "standin",
                "--patients",
                "examples/identity-patients.json",
                "--port",
                env["IDENTITY_PORT"],
            ],
        )
        standin.wait_port(ports["IDENTITY"])
        dmp.wait_for("ADT^A01^ADT_A01 3975 ")
        smtp.wait_for("de nouveau joignable")
        lookup = c.eai("identity", "lookup", "--facility", "CHU-X", "--local-id", "000003", *cfg)
        assert "R0001" in lookup
        assert "routed" in c.eai("messages", "show", "1", *cfg)

        # 3. a new message goes to both at once; sent again, it is a retransmission
        for _ in range(2):
            assert "MSA|AA|3995" in c.eai("send", f"127.0.0.1:{ports['ADT']}", A03)
        dcc.wait_for("ADT^A03^ADT_A03 3995 ")
        dmp.wait_for("ADT^A03^ADT_A03 3995 ")
        rows = json.loads(c.eai("messages", "list", "--json", *cfg))
        assert [r["control_id"] for r in rows] == ["3995", "3975"]
        assert "retransmitted" in c.eai("messages", "show", str(rows[0]["id"]), *cfg)
        assert dcc.text().count("3995 ") == 1
        assert (c.root / "var" / "identity-demo" / "eai.db").exists()
        assert not (c.root / "var" / "eai.db").exists()


def test_dicom_example_walkthrough(tmp_path: Path) -> None:
    storescp = shutil.which("storescp")
    assert storescp, "dcmtk's storescp is needed (make test installs it)"
    dicom, emage = free_port(), free_port()
    cfg = ["-c", "examples/dicom-routes.yaml"]
    with clone(tmp_path, DICOM_PORT=str(dicom), EMAGE_PORT=str(emage)) as c:
        assert c.eai("check", "examples/dicom-routes.yaml").strip() == "ok"
        (c.root / "var" / "emage").mkdir(parents=True)
        peer = c.start(
            "storescp",
            [storescp, "-aet", "EMAGE_ROUTER", "-od", "var/emage", str(emage)],
            eai=False,
        )
        peer.wait_port(emage)
        c.start("engine", ["run", *cfg]).wait_port(dicom)

        router = f"EAI_ROUTER@127.0.0.1:{dicom}"
        c.eai("dicom", "echo", router, "--calling-ae", "CT_SCANNER_1")
        ct = subprocess.run(
            [
                *EAI[:1],
                "-c",
                "from pydicom.data import get_testdata_file as f; print(f('CT_small.dcm'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        c.eai("dicom", "send", router, "--calling-ae", "CT_SCANNER_1", ct)
        deadline = time.monotonic() + 60
        received: list[Path] = []
        while time.monotonic() < deadline and not received:
            received = [p for p in (c.root / "var" / "emage").iterdir() if p.is_file()]
            time.sleep(0.1)
        assert received, peer.text()
        import pydicom

        forwarded = pydicom.dcmread(received[0])
        assert forwarded.InstitutionName == "CHU-X 750712184"
        rows = json.loads(c.eai("messages", "list", "--json", *cfg))
        assert len(rows) == 1 and rows[0]["sop_instance_uid"] == forwarded.SOPInstanceUID
        c.eai("dicom", "queue", *cfg)
        assert (c.root / "var" / "dicom" / "eai.db").exists()
        assert not (c.root / "var" / "eai.db").exists()
