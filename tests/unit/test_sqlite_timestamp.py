"""SqliteTimestamp writes exactly the strings SQLAlchemy's SQLite DATETIME writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from eai.store._schema import messages
from eai.store._sqlite_timestamp import DEFAULT_STORAGE, SqliteTimestamp

DIALECT = sqlite.dialect()
GENERAL = sqlite.DATETIME().bind_processor(DIALECT)
FAST = SqliteTimestamp().bind_processor(DIALECT)


def test_the_fast_path_writes_sqlalchemys_default_format() -> None:
    assert sqlite.DATETIME()._storage_format == DEFAULT_STORAGE


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from([None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-11))]),
)
def test_any_datetime_is_written_as_sqlalchemy_writes_it(value: datetime, tz: timezone) -> None:
    value = value.replace(tzinfo=tz)
    assert FAST(value) == GENERAL(value)


@pytest.mark.parametrize("value", [None, date(2026, 12, 7), datetime(2026, 12, 7, 0, 0)])
def test_other_values_as_sqlalchemy(value: object) -> None:
    assert FAST(value) == GENERAL(value)


def test_a_wrong_type_is_refused_as_sqlalchemy_refuses_it() -> None:
    with pytest.raises(TypeError, match="only accepts Python datetime and date"):
        FAST("2026-12-07")


def test_the_journal_columns_use_it_on_sqlite_only() -> None:
    column = messages.c.received_at.type
    assert isinstance(column.dialect_impl(DIALECT), SqliteTimestamp)
    from sqlalchemy.dialects import postgresql

    assert not isinstance(column.dialect_impl(postgresql.dialect()), SqliteTimestamp)
