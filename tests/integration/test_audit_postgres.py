"""Two processes (two engine nodes) append to one audit trail on PostgreSQL at the same
time: the chain stays linear (no gap, no fork) and verifies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eai.store import Store, list_audit, verify_chain

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

KEY = "5a" * 32
EACH = 60

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from eai import audit
    from eai.store import Store

    url, node, start, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    store = Store(url, Path(sys.argv[5]), sys.argv[6])
    while time.time() < start:
        time.sleep(0.005)
    for i in range(count):
        audit.record(store, audit.engine_actor(node), "pause", target=f"destination d{i}")
    store.engine.dispose()
    """
)


def test_two_nodes_keep_one_chain(fresh_postgres_db: str, tmp_path: Path) -> None:
    Store(fresh_postgres_db, tmp_path, KEY).engine.dispose()  # schema created once
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                fresh_postgres_db,
                node,
                str(start),
                str(EACH),
                str(tmp_path),
                KEY,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in ("node-a", "node-b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = Store(fresh_postgres_db, tmp_path, KEY)
    try:
        check = verify_chain(store.engine, store.cipher)
        rows = list_audit(store.engine, limit=None)
    finally:
        store.engine.dispose()
    assert check.ok, check.problem
    assert check.checked == 2 * EACH
    assert sorted(r.seq for r in rows) == list(range(1, 2 * EACH + 1))
    nodes = [r.actor.name for r in sorted(rows, key=lambda r: r.seq)]
    assert nodes.count("node-a") == nodes.count("node-b") == EACH
    # the writers did interleave: the chain is shared, not one run after the other
    switches = sum(1 for a, b in zip(nodes, nodes[1:], strict=False) if a != b)
    assert switches > 1
