"""The benches' server-side figures: CPU from /proc stat lines, the process tree of a
PostgreSQL server, rows per message, and the HAProxy configuration of the nodes."""

from __future__ import annotations

import pytest

from bench._measure import COMMITS, parse_stat, per_message, stat_cpu, tree_cpu
from tests._nodes import haproxy_config


def _stat(
    pid: int, comm: str, ppid: int, utime: int, stime: int, cut: int = 0, cst: int = 0
) -> str:
    """A /proc/<pid>/stat line (proc(5)): fields 14-17 are utime, stime, cutime, cstime."""
    return (
        f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 "
        f"{utime} {stime} {cut} {cst} 20 0 1 0 1158617 6184960 391 18446744073709551615\n"
    )


def test_parse_stat_counts_fields_after_the_last_parenthesis_of_the_command() -> None:
    # a command name may hold spaces and ")" (a postgres backend's, a thread's)
    f = parse_stat(_stat(4242, "postgres: a) b (c", 17, 120, 30, 7, 3))
    assert (f.pid, f.ppid, f.utime, f.stime, f.cutime, f.cstime) == (4242, 17, 120, 30, 7, 3)
    assert stat_cpu(_stat(1, "x y", 0, 150, 50, 999, 999), ticks=100) == 2.0  # not the children


def test_tree_cpu_sums_the_root_its_reaped_children_and_its_live_descendants() -> None:
    stats = {
        10: _stat(10, "postgres", 1, 100, 20, 300, 80),  # postmaster: reaped backends 380
        11: _stat(11, "postgres: walwriter", 10, 5, 5),
        12: _stat(12, "postgres: postgres eai 127.0.0.1(5)", 10, 400, 100),
        13: _stat(13, "worker", 12, 1, 1),  # a grandchild
        99: _stat(99, "eai", 1, 10_000, 10_000),  # not in the tree
    }
    assert tree_cpu(stats, 10, ticks=100) == pytest.approx((120 + 380 + 10 + 500 + 2) / 100)
    assert tree_cpu(stats, 12, ticks=100) == pytest.approx(5.02)
    assert tree_cpu(stats, 77, ticks=100) != tree_cpu(stats, 77, ticks=100)  # NaN: gone


def test_a_backend_that_exits_between_two_readings_still_counts() -> None:
    before = {
        10: _stat(10, "postgres", 1, 100, 0),
        12: _stat(12, "postgres: backend", 10, 40, 10),
    }
    # the backend ran 30 more ticks, exited, and the postmaster reaped it (cutime)
    after = {10: _stat(10, "postgres", 1, 105, 0, 60, 20)}
    assert tree_cpu(after, 10, ticks=100) - tree_cpu(before, 10, ticks=100) == pytest.approx(0.35)


def test_per_message_divides_by_the_messages_and_leaves_out_fixed_rows() -> None:
    rows = {"messages": 1000, "events": 5000, "deliveries": 1000, "eai_meta": 1, "empty": 0}
    got = per_message(rows, 1000)
    assert got == {"messages": 1.0, "events": 5.0, "deliveries": 1.0, "total": 7.0}
    assert per_message({"messages": 3}, 0) == {"messages": 3.0, "total": 3.0}
    # the transactions ride along, outside the rows' total
    got = per_message({"messages": 100, "events": 500, COMMITS: 250}, 100)
    assert got == {"messages": 1.0, "events": 5.0, COMMITS: 2.5, "total": 6.0}


def test_haproxy_config_lists_one_checked_server_per_node() -> None:
    one = haproxy_config(5000, [6001])
    two = haproxy_config(5000, [6001, 6002])
    assert "bind 127.0.0.1:5000" in one and "mode tcp" in one
    assert "    server a 127.0.0.1:6001 check" in one and "server b" not in one
    assert "    server a 127.0.0.1:6001 check\n    server b 127.0.0.1:6002 check\n" in two
