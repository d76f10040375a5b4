"""Failed console logins are counted exactly, however many arrive at the same instant.

``login_failed`` is hammered from threads, each on its own connection of the store's
pool, on SQLite and on PostgreSQL (``journal_url``): every failure must count, and every
``lock_after``-th one must lock the account, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eai.store import Store, add_account, get_account, login_failed

pytestmark = pytest.mark.integration

THREADS = 8
EACH = 25


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data", None)
    try:
        add_account(s.engine, "alice", "viewer", "$argon2id$not-a-real-hash")
        yield s
    finally:
        s.close()


def _hammer(store: Store, lock_after: int) -> list[bool]:
    """``THREADS`` threads, released together, each failing ``EACH`` logins; what each
    call answered (True: that failure locked the account)."""
    start = threading.Barrier(THREADS)
    answers: list[bool] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def fail_logins() -> None:
        try:
            start.wait(timeout=30)
            got = [login_failed(store.engine, "alice", lock_after, 60.0) for _ in range(EACH)]
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            with guard:
                errors.append(exc)
            return
        with guard:
            answers.extend(got)

    threads = [threading.Thread(target=fail_logins) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(answers) == THREADS * EACH
    return answers


def test_concurrent_failures_are_all_counted(store: Store) -> None:
    answers = _hammer(store, lock_after=THREADS * EACH + 1)
    account = get_account(store.engine, "alice")
    assert account is not None
    assert account.failures == THREADS * EACH
    assert not any(answers)
    assert not account.locked()


def test_every_lock_after_th_failure_locks_once(store: Store) -> None:
    answers = _hammer(store, lock_after=5)
    account = get_account(store.engine, "alice")
    assert account is not None
    assert answers.count(True) == THREADS * EACH // 5
    assert account.failures == 0  # the last failure locked and restarted the count
    assert account.locked()


def test_an_unknown_account_counts_nothing(store: Store) -> None:
    assert login_failed(store.engine, "bob", 1, 60.0) is False
    assert get_account(store.engine, "bob") is None
    account = get_account(store.engine, "alice")
    assert account is not None and account.failures == 0
