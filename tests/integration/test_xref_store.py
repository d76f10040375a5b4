"""The cross-reference store on SQLite and PostgreSQL: records, history, A40 merges, A47
identifier changes, ordering keys, what is kept in clear, and ``eai identity lookup``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from eai.cli import cli, main
from eai.store import (
    Store,
    change_identifier,
    local_ordering_key,
    ordering_key_for,
    record_xref,
)
from eai.store import merge_identities as merge
from eai.store import xref_lookup as lookup
from eai.store.schema import identity_merges, identity_xref

T0 = datetime(2026, 11, 23, 10, 0, 0)
F = "CHU-X"
INS_A, INS_B = "279035121518989", "162018885045327"
OID = "1.2.250.1.213.1.4.10"


@pytest.fixture
def store(journal_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(journal_url, tmp_path / "data")
    try:
        yield s
    finally:
        s.engine.dispose()


def _write(store: Store, fn, *args, at: datetime = T0):
    with store.engine.begin() as conn:
        return fn(conn, store.cipher, *args, at)


def _key(store: Store, local_id: str, facility: str = F) -> str | None:
    with store.engine.connect() as conn:
        return ordering_key_for(conn, store.cipher, facility, local_id)


def test_record_then_lookup(store: Store):
    assert _write(store, record_xref, F, "000003", "R0001", INS_A) == "created"
    view = lookup(store.engine, store.cipher, F, "000003")
    assert view.known and (view.regional_id, view.ins) == ("R0001", INS_A)
    assert view.current is not None and view.current.reason == "reconciled"
    assert [h.reason for h in view.history] == ["reconciled"] and view.merges == ()
    assert not lookup(store.engine, store.cipher, F, "000004").known
    assert not lookup(store.engine, store.cipher, "CH-Y", "000003").known  # per facility


def test_same_state_is_unchanged_a_new_one_is_history(store: Store):
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    assert _write(store, record_xref, F, " 000003 ", "R0001", INS_A) == "unchanged"
    assert _write(store, record_xref, F, "000003", "R0009", INS_A, at=T0 + timedelta(1)) == (
        "updated"
    )
    with store.engine.begin() as conn:
        assert (
            record_xref(conn, store.cipher, F, "000003", "R0009", INS_A, T0, ins_oid=OID)
            == "updated"
        )
    view = lookup(store.engine, store.cipher, F, "000003")
    assert [(h.regional_id, h.ins_oid) for h in view.history] == [
        ("R0001", ""),
        ("R0009", ""),
        ("R0009", OID),
    ]
    assert [h.valid_to is None for h in view.history] == [False, False, True]
    assert view.history[0].valid_to == T0 + timedelta(1)
    assert (view.regional_id, view.ins_oid) == ("R0009", OID)
    assert _write(store, record_xref, F, "000003", "", "") == "unchanged"  # nothing to record


def test_ins_and_local_ids_are_not_stored_in_clear(store: Store):
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    _write(store, record_xref, F, "000004", "R0002", INS_B)
    _write(store, merge, F, "000003", "000004")
    with store.engine.connect() as conn:
        rows = [tuple(r) for t in (identity_xref, identity_merges) for r in conn.execute(select(t))]
    blob = repr(rows)
    for secret in (INS_A, INS_B, "000003", "000004"):
        assert secret not in blob
    assert "R0001" in blob  # the regional id is an opaque platform identifier, kept in clear


def test_a40_merge_points_the_merged_id_at_the_surviving_identity(store: Store):
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    _write(store, record_xref, F, "000004", "R0002", INS_B)
    before = _key(store, "000004")
    _write(store, merge, F, "000003", "000004", at=T0 + timedelta(hours=1))
    merged = lookup(store.engine, store.cipher, F, "000004")
    assert (merged.regional_id, merged.ins, merged.stands_for) == ("R0001", INS_A, "000003")
    assert [(h.reason, h.regional_id, h.alias_of) for h in merged.history] == [
        ("reconciled", "R0002", ""),
        ("merged", "R0001", "000003"),
    ]
    (event,) = merged.merges
    assert (event.kind, event.surviving, event.merged) == ("A40", "000003", "000004")
    assert (event.regional_before, event.regional_after) == ("R0002", "R0001")
    assert lookup(store.engine, store.cipher, F, "000003").merges == (event,)
    assert _key(store, "000004") == _key(store, "000003") != before
    # the establishment's merge stands: a later reconciliation does not undo it
    assert _write(store, record_xref, F, "000004", "R0002", INS_B) == "merged"
    assert lookup(store.engine, store.cipher, F, "000004").regional_id == "R0001"
    # ...and a new regional id for the surviving identity is the merged id's too
    _write(store, record_xref, F, "000003", "R0007", INS_A)
    assert lookup(store.engine, store.cipher, F, "000004").regional_id == "R0007"
    assert _key(store, "000004") == _key(store, "000003")


def test_merge_into_an_identity_never_reconciled_orders_behind_its_local_key(store: Store):
    _write(store, record_xref, F, "000004", "R0002", INS_B)
    _write(store, merge, F, "000003", "000004")
    assert _key(store, "000003") is None  # unknown to the store: the caller's fallback...
    fallback = local_ordering_key(store.cipher, F, "000003")
    assert _key(store, "000004") == fallback  # ...which the merged id now shares
    assert lookup(store.engine, store.cipher, F, "000004").regional_id == ""


def test_merge_chains_and_reverse_merges_never_loop(store: Store):
    for local, regional in (("A", "R1"), ("B", "R2"), ("C", "R3")):
        _write(store, record_xref, F, local, regional, "")
    _write(store, merge, F, "B", "A")  # A -> B
    _write(store, merge, F, "C", "B")  # B -> C, so A -> C
    assert lookup(store.engine, store.cipher, F, "A").regional_id == "R3"
    assert lookup(store.engine, store.cipher, F, "A").stands_for == "C"
    assert _key(store, "A") == _key(store, "B") == _key(store, "C")
    _write(store, merge, F, "A", "C")  # merged back the other way
    keys = {_key(store, x) for x in ("A", "B", "C")}
    assert len(keys) == 1 and None not in keys
    for local in ("A", "B", "C"):
        assert lookup(store.engine, store.cipher, F, local).regional_id == "R3"
    _write(store, merge, F, "A", "A")  # merging an id with itself changes nothing
    assert len(lookup(store.engine, store.cipher, F, "A").merges) == 2


def test_a47_identifier_change_hands_the_cross_reference_to_the_new_id(store: Store):
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    old_key = _key(store, "000003")
    _write(store, change_identifier, F, "000003", "100003")
    new = lookup(store.engine, store.cipher, F, "100003")
    assert (new.regional_id, new.ins, new.stands_for) == ("R0001", INS_A, "")
    assert [h.reason for h in new.history] == ["id_changed"]
    assert new.merges[0].kind == "A47"
    old = lookup(store.engine, store.cipher, F, "000003")
    assert (old.stands_for, old.regional_id) == ("100003", "R0001")
    assert _key(store, "100003") == _key(store, "000003") == old_key


def test_a47_to_an_id_with_its_own_cross_reference_keeps_it(store: Store):
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    _write(store, record_xref, F, "100003", "R0002", INS_B)
    _write(store, change_identifier, F, "000003", "100003")
    assert lookup(store.engine, store.cipher, F, "100003").regional_id == "R0002"
    assert lookup(store.engine, store.cipher, F, "000003").regional_id == "R0002"


def test_a47_without_any_cross_reference_still_orders_the_old_id_behind_the_new(store: Store):
    _write(store, change_identifier, F, "000003", "100003")
    assert _key(store, "000003") == local_ordering_key(store.cipher, F, "100003")
    assert _key(store, "100003") is None


def test_ordering_keys_follow_the_regional_identity_across_facilities(store: Store):
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    _write(store, record_xref, "CH-Y", "Y-1", "R0001", INS_A)
    _write(store, record_xref, F, "000010", "R0002", INS_B)
    assert _key(store, "000003") == _key(store, "Y-1", "CH-Y")
    assert _key(store, "000003") != _key(store, "000010")
    assert len(_key(store, "000003") or "") == 40
    assert local_ordering_key(store.cipher, F, "000003") != local_ordering_key(
        store.cipher, "CH-Y", "000003"
    )


# --- eai identity lookup ---------------------------------------------------------------


@pytest.fixture
def routes(store: Store, journal_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"engine: {{data_dir: {tmp_path / 'data'}, database: '{journal_url}'}}\n", "utf-8"
    )
    _write(store, record_xref, F, "000003", "R0001", INS_A)
    _write(store, record_xref, F, "000004", "R0002", INS_B)
    _write(store, merge, F, "000003", "000004", at=T0 + timedelta(hours=1))
    return path


def test_cli_lookup_prints_the_cross_reference_and_its_history(routes: Path):
    args = ["identity", "lookup", "-c", str(routes), "--facility", F, "--local-id", "000004"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "regional id  R0001" in out and f"INS          {INS_A}" in out
    assert "stands for   000003" in out and "merge (A40): 000004 -> 000003" in out
    assert "reconciled" in out and "R0002" in out
    as_json = CliRunner().invoke(cli, [*args, "--json"])
    data = json.loads(as_json.output)
    assert data["regional_id"] == "R0001" and len(data["history"]) == 2
    assert data["merges"][0]["regional_before"] == "R0002"


def test_cli_lookup_of_an_unknown_id_exits_3(routes: Path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["identity", "lookup", "-c", str(routes), "--facility", F, "--local-id", "nope"])
    assert info.value.code == 3  # not found (eai.errors.EXIT_CODES)
    assert "no cross-reference" in capsys.readouterr().err
