"""What the benches measure on the server side: CPU time from /proc and journal rows per message.

Touches: /proc (reads), the journal database (reads, after the engines stopped).

- :func:`stat_cpu` / :func:`cpu_seconds`: user + system CPU of a process (all its
  threads) or of one thread, from ``/proc/<pid>/stat`` (``/proc/<pid>/task/<tid>/stat``).
- :func:`tree_cpu` / :func:`process_tree_cpu`: the CPU of a process, of its live
  children, and of the children it has already reaped (``cutime``/``cstime``): a
  PostgreSQL server, whose postmaster forks one backend per connection plus its
  auxiliary processes (WAL writer, checkpointer...), so that a backend that exits
  between two readings still counts.
- :func:`table_rows` / :func:`per_message`: rows per table (``SELECT count(*)``) and
  their ratio to the messages journaled; :func:`pg_rows_written`: on PostgreSQL,
  the rows inserted, updated and deleted per table (``pg_stat_user_tables``), which
  also counts the rewrites (leases, statuses) that ``count(*)`` does not see, and
  the transactions committed (``pg_stat_database``). Read once the engines stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, inspect, select, table, text

PROC = Path("/proc")
COMMITS = "(transactions)"
"""The key of :func:`pg_rows_written`'s answer holding the database's commits."""


@dataclass(frozen=True)
class StatFields:
    """The fields of a ``/proc/<pid>/stat`` line that the benches use, in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int  # reaped children's user time
    cstime: int  # reaped children's system time


def parse_stat(line: str) -> StatFields:
    """Parses one ``/proc/<pid>/stat`` line; the command name (2nd field) may hold
    spaces and parentheses, so the fields are counted after its last ``)``."""
    head, _, tail = line.rpartition(")")
    fields = tail.split()  # fields[0] is the state (field 3 of proc(5))
    return StatFields(
        pid=int(head.split("(", 1)[0]),
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def stat_cpu(line: str, ticks: int | None = None) -> float:
    """User + system CPU seconds of one stat line (its own threads, not its children)."""
    f = parse_stat(line)
    return (f.utime + f.stime) / (ticks or _ticks())


def cpu_seconds(stat: Path) -> float:
    """:func:`stat_cpu` of a ``/proc/.../stat`` file; NaN when it is gone."""
    try:
        return stat_cpu(stat.read_text())
    except OSError:
        return float("nan")


def tree_cpu(stats: Mapping[int, str], root: int, ticks: int | None = None) -> float:
    """CPU seconds of ``root`` (with its reaped children) and of its live descendants,
    given the stat lines of the live processes by pid."""
    parsed = {pid: parse_stat(line) for pid, line in stats.items()}
    if root not in parsed:
        return float("nan")
    children: dict[int, list[int]] = {}
    for f in parsed.values():
        children.setdefault(f.ppid, []).append(f.pid)
    total, todo = 0, [root]
    while todo:
        f = parsed[todo.pop()]
        # a live process's cutime holds its reaped children; its live ones are walked
        total += f.utime + f.stime + f.cutime + f.cstime
        todo.extend(children.get(f.pid, ()))
    return total / (ticks or _ticks())


def read_stats(proc: Path = PROC) -> dict[int, str]:
    """The stat line of every live process (those that exit meanwhile are left out)."""
    out: dict[int, str] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "stat").read_text()
            except OSError:
                continue
    return out


def process_tree_cpu(root: int) -> float:
    """:func:`tree_cpu` of the live system (e.g. the postmaster's pid)."""
    return tree_cpu(read_stats(), root)


def postmaster_pid(datadir: Path) -> int:
    """The pid of the PostgreSQL server of ``datadir`` (first line of postmaster.pid)."""
    return int((datadir / "postmaster.pid").read_text().splitlines()[0])


def table_rows(engine: Engine) -> dict[str, int]:
    """``SELECT count(*)`` of every table of the journal, by table name."""
    names = sorted(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())
            for name in names
        }


def pg_rows_written(engine: Engine, timeout: float = 10.0) -> dict[str, int]:
    """Rows inserted + updated + deleted per table since the database was made
    (PostgreSQL's cumulative statistics). A backend flushes its counts before it leaves
    ``pg_stat_activity``: read once no other client is connected (``timeout`` at most)."""
    others = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:  # a new transaction: a new statistics snapshot
            if conn.execute(others).scalar_one() == 0 or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    query = text("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")
    commits = text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    with engine.connect() as conn:
        out = {str(r[0]): int(r[1]) for r in conn.execute(query)}
        # the readings' own transactions are counted too: a handful
        out[COMMITS] = int(conn.execute(commits).scalar_one())
    return out


def per_message(rows: Mapping[str, int], messages: int) -> dict[str, float]:
    """Rows per message, by table (those under 0.01 left out: fixed rows such as the
    schema version), and ``total`` (all tables); ``COMMITS`` (transactions per
    message) is passed through, not added to the rows."""
    n = max(messages, 1)
    out = {name: round(count / n, 2) for name, count in rows.items() if count / n >= 0.005}
    out["total"] = round(sum(c for name, c in rows.items() if name != COMMITS) / n, 2)
    return out


def journal_rows(url: str, messages: int) -> dict[str, dict[str, float]]:
    """Rows present per message (``count``) and, on PostgreSQL, rows written per
    message (``written``), in the journal at ``url`` (read once the engines stopped)."""
    engine = create_engine(url)
    try:
        out = {"count": per_message(table_rows(engine), messages)}
        if engine.dialect.name == "postgresql":
            out["written"] = per_message(pg_rows_written(engine), messages)
        return out
    finally:
        engine.dispose()
