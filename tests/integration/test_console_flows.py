"""The console's 24 h sparklines (:func:`eai.store.flow_series`): messages and errors per
15-minute interval per listener, route and destination, the finished intervals rolled up
once into ``flow_buckets`` and read from there, the current ones counted live.

A journal on each backend (SQLite, PostgreSQL), rows written straight into the tables at
chosen times.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from eai.console._spark import sparkline
from eai.store import FlowSeries, Store, flow_series, utcnow
from eai.store.schema import deliveries, flow_buckets, messages, meta

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 7, 30)  # 12:00 is the current interval's start
START = datetime(2026, 12, 6, 12, 15)  # 96 intervals back from 12:15 (exclusive)


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data")
    try:
        yield s
    finally:
        s.engine.dispose()


def _message(
    store: Store,
    at: datetime,
    listener: str = "adt",
    status: str = "processed",
    to: tuple[tuple[str, str, str, int], ...] = (("dcc", "r1", "delivered", 1),),
) -> int:
    with store.engine.begin() as conn:
        mid = conn.execute(
            insert(messages)
            .values(
                listener=listener,
                received_at=at,
                content_type="hl7v2",
                status=status,
                size=1,
                payload=b"",
            )
            .returning(messages.c.id)
        ).scalar_one()
        for dest, route, dstatus, attempts in to:
            conn.execute(
                insert(deliveries).values(
                    message_id=mid,
                    destination=dest,
                    route=route,
                    patient_key="",
                    status=dstatus,
                    attempts=attempts,
                    created_at=at,
                    next_attempt_at=at,
                )
            )
    return mid


def _index(at: datetime) -> int:
    return int((at - START) / timedelta(minutes=15))


def test_counts_per_interval_with_errors_for_each_kind_of_flow(store: Store) -> None:
    three_hours = NOW - timedelta(hours=3)  # 09:07:30, interval 09:00
    _message(store, three_hours)
    _message(store, three_hours + timedelta(minutes=1), status="rejected", to=())
    _message(store, three_hours, to=(("dcc", "r1", "dead", 5), ("dpi", "r2", "delivered", 2)))
    _message(store, NOW - timedelta(minutes=2), listener="lab", to=(("dcc", "r1", "retrying", 1),))
    _message(store, NOW - timedelta(days=2))  # outside the 24 h
    series = flow_series(store.engine, NOW)
    assert set(series) == {
        ("listener", "adt"),
        ("listener", "lab"),
        ("destination", "dcc"),
        ("destination", "dpi"),
        ("route", "r1"),
        ("route", "r2"),
    }
    i, now = _index(datetime(2026, 12, 7, 9, 0)), _index(datetime(2026, 12, 7, 12, 0))
    assert now == 95
    adt = series[("listener", "adt")]
    assert adt.start == START and len(adt.totals) == 96
    assert (adt.totals[i], adt.errors[i], sum(adt.totals)) == (3, 1, 3)
    dcc = series[("destination", "dcc")]
    assert (dcc.totals[i], dcc.errors[i]) == (2, 1)  # one delivered, one dead
    assert (dcc.totals[now], dcc.errors[now]) == (1, 1)  # retrying: counted live
    assert (series[("destination", "dpi")].errors[i]) == 1  # delivered at the 2nd attempt
    assert series[("route", "r1")].totals[i] == 2 and series[("route", "r2")].totals[i] == 1
    assert series[("listener", "lab")].totals[now] == 1


def test_finished_intervals_are_read_from_the_rollup_not_the_journal(store: Store) -> None:
    early = NOW - timedelta(hours=5)
    _message(store, early)
    first = flow_series(store.engine, NOW)
    with store.engine.connect() as conn:
        cursor = conn.execute(select(meta.c.value).where(meta.c.key == "flow_rollup_upto")).scalar()
        stored = conn.execute(select(func.count()).select_from(flow_buckets)).scalar()
    assert cursor == "2026-12-07T12:00:00"  # 11:45-12:00 ended more than 5 min ago
    assert stored == 3  # listener, route, destination of the one interval with messages
    # A row that appears later in a rolled-up interval is not counted: the interval is read
    # from flow_buckets. A row in the live part is.
    _message(store, early)
    _message(store, NOW - timedelta(minutes=3))
    again = flow_series(store.engine, NOW)
    adt0, adt1 = first[("listener", "adt")], again[("listener", "adt")]
    assert adt1.totals[_index(early)] == adt0.totals[_index(early)] == 1
    assert sum(adt1.totals) == 2
    # Later, the next intervals roll up in their turn; the day before leaves the window.
    later = flow_series(store.engine, NOW + timedelta(hours=24))
    assert ("listener", "adt") not in later
    with store.engine.connect() as conn:
        cursor = conn.execute(select(meta.c.value).where(meta.c.key == "flow_rollup_upto")).scalar()
    assert cursor == "2026-12-08T12:00:00"


def test_a_lost_race_writes_nothing(store: Store) -> None:
    """Two consoles roll up at once: the cursor moves once, the rows are written once."""
    _message(store, NOW - timedelta(hours=1))
    flow_series(store.engine, NOW)
    with store.engine.begin() as conn:
        conn.execute(
            meta.update()
            .where(meta.c.key == "flow_rollup_upto")
            .values(value="2026-12-07T11:00:00")
        )  # as if another node had not yet seen the last rollup: its update finds another value
    from eai.store._flows import _roll_up

    _roll_up(store.engine, "2026-12-07T10:00:00", NOW - timedelta(hours=2), NOW, NOW)
    with store.engine.connect() as conn:
        stored = conn.execute(select(func.sum(flow_buckets.c.total))).scalar()
    assert stored == 3  # listener + route + destination, once


def test_the_sparkline_is_inline_svg_with_its_errors_marked() -> None:
    totals = [0] * 96
    errors = [0] * 96
    totals[10], totals[50], errors[50] = 40, 20, 1
    svg = str(sparkline(FlowSeries("listener", "adt", START, tuple(totals), tuple(errors))))
    assert svg.startswith("<svg") and 'data-total="60"' in svg and 'data-errors="1"' in svg
    (bar,) = re.findall(r'<rect class="err" x="(\d+)" y="(\d+)" width="2" height="(\d+)"/>', svg)
    assert bar == ("100", "21", "3")  # at least 3 px: one error shows next to 40 messages
    assert "<script" not in svg and "http" not in svg  # nothing fetched
    empty = str(sparkline(None))
    assert 'data-total="0"' in empty and "<rect" not in empty


def test_the_console_rolls_up_on_its_own_thread_without_a_page_view(store: Store) -> None:
    from eai.config import ConsoleConfig, load_config_text
    from eai.console import ConsoleServer

    _message(store, utcnow() - timedelta(hours=2))
    config = load_config_text("listeners: []\ndestinations: []\nroutes: []\n", env={})
    server = ConsoleServer(store, lambda: config, ConsoleConfig(bind="127.0.0.1:0"))
    server.start()
    try:
        deadline = time.monotonic() + 20
        rows = 0
        while not rows and time.monotonic() < deadline:
            time.sleep(0.1)
            with store.engine.connect() as conn:
                rows = conn.execute(select(func.sum(flow_buckets.c.total))).scalar() or 0
    finally:
        server.stop()
    assert rows == 3  # listener, route, destination of the message 2 h ago
