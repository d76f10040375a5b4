"""CLI start-up benchmark: wall time of ``eai --help``, ``eai messages list``, ``eai check``.

Run by hand::

    .venv/bin/python bench/cli_latency.py [--runs 15] [--importtime]

Each command runs as the user runs it: the venv's ``eai`` console script, a fresh
interpreter every time, in a tmp dir holding a copy of the bundled ``routes.yaml``
(so ``./var`` is the tmp dir's) and a journal seeded with ``--messages`` PAM FR A01
messages. Measured (targets from issue 23):

- ``eai --help`` (<= 0.15 s);
- ``eai messages list --limit 20`` (<= 0.4 s);
- ``eai check`` (<= 0.5 s);
- ``eai check dicom-routes.yaml`` (the DICOM example: its plugin's settings validated
  without pynetdicom; same target);
- for reference: ``python -c pass`` (the interpreter alone), ``eai queue list`` and
  ``python -c 'import eai.engine'`` (what ``eai run`` imports before it starts).

Bytecode: every run reads and writes compiled modules in ``PYCACHE`` under the tmp dir
(``PYTHONPYCACHEPREFIX``, ``PYTHONDONTWRITEBYTECODE`` unset), filled by the warm-up runs,
as an installed eai would have them; ``--no-bytecode`` keeps the caller's settings (with
``PYTHONDONTWRITEBYTECODE=1``, as in the sessions before 2026-12-07 04:00, eai's own
modules were compiled from source at every run: about 0.025 s more per command).

With ``hyperfine`` on the PATH it does the timing (``--warmup 2``); otherwise a loop of
``subprocess.run``, two warm-up runs then ``--runs`` timed ones per command, commands
interleaved so that a burst of load on the machine spreads over all of them. Reported:
min, median and max seconds, whether the median meets the target, and the CPU time of
the process (user + system, mean: hyperfine's, or ``getrusage`` of the children), which a
loaded machine inflates much less than the wall time.

``--compare TREE`` runs every command a second time with ``PYTHONPATH=TREE`` (the code
before a change, ``git worktree add /tmp/eai-before <commit>``), in the same hyperfine
run or interleaved in the same loop: the ratio between the two trees holds under load
when the absolute times do not.

``--importtime`` also runs each command once under ``python -X importtime`` and prints
the modules imported at top level that cost most (cumulative microseconds), and their
total: the figures behind the wall times.

To measure another tree alone: ``PYTHONPATH=/tmp/eai-before .venv/bin/python
bench/cli_latency.py`` (the console script and the seeding then import that tree).

Prints a table and writes JSON to ``bench/results/`` (gitignored). Touches: files (a tmp
dir), processes (runs ``eai``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIXTURE = REPO.parent / "shared" / "fixtures" / "hl7v2" / "pamfr_a01_admission.er7"
EAI = Path(sys.executable).with_name("eai")

PYCACHE = "pycache"
"""The bytecode cache's directory in the tmp dir (``PYTHONPYCACHEPREFIX``)."""

COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("python -c pass", [sys.executable, "-c", "pass"], None),
    ("eai --help", [str(EAI), "--help"], 0.15),
    ("eai messages list --limit 20", [str(EAI), "messages", "list", "--limit", "20"], 0.4),
    ("eai check", [str(EAI), "check"], 0.5),
    ("eai check dicom-routes.yaml", [str(EAI), "check", "dicom-routes.yaml"], 0.5),
    ("eai queue list", [str(EAI), "queue", "list"], None),
    ("import eai.engine", [sys.executable, "-c", "import eai.engine"], None),
]
"""Label, argv, target median in seconds (None: for reference)."""

HEAVY = frozenset(
    {"sqlalchemy", "pydantic", "yaml", "pydicom", "pynetdicom", "lxml", "httpx", "fhir.resources"}
)
"""Packages whose import is worth knowing about (reported per command with --importtime)."""


def seed(workdir: Path, count: int) -> None:
    """The bundled routes.yaml (and examples/dicom-routes.yaml) in ``workdir`` and ``count``
    A01s in its journal."""
    from eai.config import load_config
    from eai.messages import JournalEntry
    from eai.store import Store, insert_entries, utcnow
    from standins.hl7 import adt_from

    shutil.copy(REPO / "routes.yaml", workdir / "routes.yaml")
    shutil.copy(REPO / "examples" / "dicom-routes.yaml", workdir / "dicom-routes.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        config = load_config(workdir / "routes.yaml", env)
        store = Store(config.engine.database, Path(config.engine.data_dir))
        template = FIXTURE.read_bytes()
        entries = [
            JournalEntry(
                listener="chu-x-adt",
                payload=adt_from(template, f"BENCH{i:06d}", patient=f"{i % 50:06d}"),
                received_at=utcnow(),
                control_id=f"BENCH{i:06d}",
                message_type="ADT^A01",
                sending_application="GAM",
                sending_facility="CHU-X",
            )
            for i in range(count)
        ]
        with store.engine.begin() as conn:
            insert_entries(conn, store.cipher, entries)
        store.engine.dispose()
    finally:
        os.chdir(cwd)


BYTECODE: dict[str, str] = {}
"""``PYTHONPYCACHEPREFIX`` of the runs (set by :func:`main`; empty: ``--no-bytecode``)."""


def clean_env() -> dict[str, str]:
    """The environment of every run: no ``EAI_*`` (so the tmp dir's routes.yaml is used),
    and the bytecode cache of :data:`BYTECODE`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    if BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(BYTECODE)
    return env


Timed = tuple[dict[str, list[float]], dict[str, float]]
"""Wall seconds of each run, and the mean CPU seconds (user + system) of a run, by label."""


def variants(trees: list[str]) -> list[tuple[str, list[str], float | None]]:
    """Every command once per tree (``""``: this one, as installed), run through ``env``
    so that both sides pay the same; labels get `` [TREE]`` for another tree."""
    out = []
    for tree in trees:
        env = ["env", f"PYTHONPATH={tree}"] if tree else ["env"]
        for label, argv, target in COMMANDS:
            out.append((f"{label} [{tree}]" if tree else label, [*env, *argv], target))
    return out


def run_once(argv: list[str], workdir: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=workdir, env=clean_env(), capture_output=True, check=False, timeout=60
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def time_with_loop(
    commands: list[tuple[str, list[str], float | None]], workdir: Path, runs: int
) -> Timed:
    times: dict[str, list[float]] = {label: [] for label, _, _ in commands}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in commands}
    for _ in range(2):
        for _, argv, _ in commands:
            run_once(argv, workdir)
    for _ in range(runs):
        for label, argv, _ in commands:
            wall, used = run_once(argv, workdir)
            times[label].append(wall)
            cpu[label].append(used)
    return times, {label: statistics.mean(v) for label, v in cpu.items()}


def time_with_hyperfine(
    hyperfine: str, commands: list[tuple[str, list[str], float | None]], workdir: Path, runs: int
) -> Timed:
    out = workdir / "hyperfine.json"
    argv = [hyperfine, "--warmup", "2", "--runs", str(runs), "-N", "--export-json", str(out)]
    for label, command, _ in commands:
        argv += ["-n", label, shlex.join(command)]  # -N splits it as a shell would
    subprocess.run(argv, cwd=workdir, env=clean_env(), check=True, capture_output=True)
    results = json.loads(out.read_text())["results"]
    times = {r["command"]: list(r["times"]) for r in results}
    return times, {r["command"]: r["user"] + r["system"] for r in results}


def import_profile(argv: list[str], workdir: Path, top: int, tree: str = "") -> dict[str, Any]:
    """Top-level imports of one run under ``-X importtime``: total and the costliest
    (``tree``: with ``PYTHONPATH=tree``)."""
    env = clean_env() | ({"PYTHONPATH": tree} if tree else {})
    python = [sys.executable, "-X", "importtime"]
    if argv[0] == str(EAI):
        command = [*python, "-c", "import sys; from eai.cli import main; main(sys.argv[1:])"]
        command += argv[1:]
    else:
        command = [*python, *argv[1:]]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    modules: list[tuple[int, str]] = []
    loaded: set[str] = set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():
            continue
        loaded.add(name.strip())
        if name[1:2] != " ":  # imported at top level, not by another module
            modules.append((int(cumulative), name.strip()))
    modules.sort(reverse=True)
    return {
        "total_us": sum(us for us, _ in modules),
        "top": [{"module": name, "cumulative_us": us} for us, name in modules[:top]],
        "heavy_loaded": sorted(HEAVY & loaded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--messages", type=int, default=200, help="messages in the journal")
    parser.add_argument("--importtime", action="store_true", help="print -X importtime figures")
    parser.add_argument("--top", type=int, default=8, help="modules shown per command")
    parser.add_argument("--no-hyperfine", action="store_true", help="time with the subprocess loop")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="keep the caller's bytecode settings (no cache of compiled modules in the tmp dir)",
    )
    parser.add_argument(
        "--compare", metavar="TREE", help="also run each command with PYTHONPATH=TREE"
    )
    args = parser.parse_args()
    commands = variants(["", args.compare] if args.compare else [""])

    hyperfine = None if args.no_hyperfine else shutil.which("hyperfine")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="eai-cli-bench-") as tmp:
        workdir = Path(tmp)
        if not args.no_bytecode:
            BYTECODE["PYTHONPYCACHEPREFIX"] = str(workdir / PYCACHE)
        seed(workdir, args.messages)
        if hyperfine:
            times, cpu = time_with_hyperfine(hyperfine, commands, workdir, args.runs)
        else:
            times, cpu = time_with_loop(commands, workdir, args.runs)
        profiles = {}
        for tree in ["", args.compare] if args.compare else [""]:
            for label, argv, _ in COMMANDS if args.importtime else ():
                name = f"{label} [{tree}]" if tree else label
                profiles[name] = import_profile(argv, workdir, args.top, tree)
    load_after = os.getloadavg()

    print(f"timer: {'hyperfine' if hyperfine else 'subprocess loop'}, {args.runs} runs")
    print(f"bytecode: {'caller settings' if args.no_bytecode else 'cached in the tmp dir'}")
    print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    width = max(len(label) for label, _, _ in commands) + 1
    print(f"{'command':{width}} {'min s':>7} {'median s':>9} {'max s':>7} {'cpu s':>7}  target")
    rows = []
    for label, _, target in commands:
        samples = times[label]
        median = statistics.median(samples)
        verdict = "" if target is None else f"<= {target} {'met' if median <= target else 'MISSED'}"
        print(
            f"{label:{width}} {min(samples):7.3f} {median:9.3f} {max(samples):7.3f} "
            f"{cpu[label]:7.3f}  {verdict}"
        )
        rows.append(
            {
                "command": label,
                "min_s": min(samples),
                "median_s": median,
                "max_s": max(samples),
                "cpu_s": cpu[label],
                "target_s": target,
                "samples_s": samples,
            }
        )
    for label, profile in profiles.items():
        print(f"\n-X importtime, {label}: top-level imports {profile['total_us'] / 1e6:.3f} s")
        for item in profile["top"]:
            print(f"  {item['cumulative_us'] / 1e3:8.1f} ms  {item['module']}")
        print(f"  loads: {', '.join(profile['heavy_loaded']) or 'none of ' + ', '.join(HEAVY)}")

    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"cli_latency-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "pythonpath": os.environ.get("PYTHONPATH", ""),
                "compare": args.compare,
                "timer": "hyperfine" if hyperfine else "subprocess loop",
                "bytecode_cache": not args.no_bytecode,
                "load_average": [load_before[0], load_after[0]],
                "messages": args.messages,
                "commands": rows,
                "importtime": profiles,
            },
            indent=2,
        )
    )
    print(f"\nwritten {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
