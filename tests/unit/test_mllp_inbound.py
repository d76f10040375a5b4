"""What the listener answers to each block, without sockets (``FrameHandler``)."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

import pytest

from connectors.mllp._framing import ProtocolError
from connectors.mllp._inbound import FrameHandler, Reply, new_control_id
from eai.hl7 import parse
from tests._listeners import FakeJournal
from tests._mllp import err_code, msa
from tests.engine_harness import adt

FIXED = datetime(2024, 3, 6, 11, 11, 54, tzinfo=UTC)


def handler(journal: FakeJournal, **kwargs: object) -> FrameHandler:
    options: dict[str, object] = {
        "listener": "L1",
        "ingest": journal,
        "allowed_senders": None,
        "default_charset": "UNICODE UTF-8",
        "max_message_bytes": 1000,
        "clock": lambda: FIXED,
    }
    options.update(kwargs)
    return FrameHandler(**options)  # type: ignore[arg-type]


def on_frame(h: FrameHandler, payload: bytes) -> Reply:
    return asyncio.run(h.on_frame(payload, "10.0.0.1:5000"))


def on_error(h: FrameHandler, err: ProtocolError) -> Reply | None:
    return asyncio.run(h.on_protocol_error(err, "10.0.0.1:5000"))


def test_accept_journals_then_answers_aa() -> None:
    journal = FakeJournal()
    reply = on_frame(handler(journal), adt("A-1"))
    assert reply.ack is not None and msa(reply.ack) == ("AA", "A-1")
    assert reply.outcome == "accepted"
    [entry] = journal.entries
    assert entry.received_at == FIXED
    assert entry.dedup_key == "L1|GAM|CHU-X|A-1"
    assert entry.peer == "10.0.0.1:5000"
    assert entry.ack == reply.ack


def test_each_ack_has_its_own_control_id() -> None:
    journal = FakeJournal()
    h = handler(journal)
    first = on_frame(h, adt("A-1")).ack
    second = on_frame(h, adt("A-2")).ack
    assert first is not None and second is not None
    assert first.split(b"|")[9] != second.split(b"|")[9]
    assert len(first.split(b"|")[9]) == 20


def test_duplicate_returns_stored_ack() -> None:
    journal = FakeJournal()
    h = handler(journal)
    first = on_frame(h, adt("D-1"))
    again = on_frame(h, adt("D-1"))
    assert again.ack == first.ack
    assert again.outcome == "duplicate"


def test_default_charset_applies_when_msh18_empty() -> None:
    latin = adt("C-1", charset="", pid_name="TEST^PATIENT").replace(
        b"TEST^PATIENT", b"H\xe9L\xe8NE^TEST"
    )
    assert msa(on_frame(handler(FakeJournal()), latin).ack or b"")[0] == "AR"
    reply = on_frame(handler(FakeJournal(), default_charset="8859/1"), latin)
    assert msa(reply.ack or b"") == ("AA", "C-1")


def test_rejected_journal_failure_still_answers_ar(caplog: pytest.LogCaptureFixture) -> None:
    journal = FakeJournal()
    journal.fail = True
    with caplog.at_level(logging.ERROR):
        reply = on_frame(handler(journal), b"garbage")
    assert msa(reply.ack or b"") == ("AR", "")
    assert "could not journal" in caplog.text


def test_empty_frame_is_ar_not_journaled() -> None:
    journal = FakeJournal()
    reply = on_error(handler(journal), ProtocolError("empty"))
    assert reply is not None and reply.ack is not None
    assert msa(reply.ack) == ("AR", "")
    assert err_code(reply.ack) == "100"
    assert journal.entries == []


def test_oversize_is_ar_and_journals_the_head() -> None:
    journal = FakeJournal()
    head = adt("BIG-1")[:100]
    reply = on_error(handler(journal), ProtocolError("oversize", 1001, head))
    assert reply is not None and msa(reply.ack or b"") == ("AR", "BIG-1")
    [entry] = journal.rejected
    assert entry.payload == head
    assert entry.reject_reason.startswith("message exceeds 1000 bytes, the size limit")
    # a code and a text that say it is the size (HL7 v2.5 table 0357: 102), not 100
    assert err_code(reply.ack or b"") == "102"
    assert "1000 bytes" in parse(reply.ack or b"").get("ERR-8")


@pytest.mark.parametrize("kind", ["junk", "unterminated"])
def test_junk_and_unterminated_get_no_answer(kind: str) -> None:
    journal = FakeJournal()
    reply = on_error(handler(journal), ProtocolError(kind, 12, b"MSH|..."))  # type: ignore[arg-type]
    assert reply is None
    assert journal.entries == []


def test_logs_never_hold_payload_content(caplog: pytest.LogCaptureFixture) -> None:
    secret = "DUPONT^JEANNE"
    journal = FakeJournal()
    h = handler(journal, allowed_senders=frozenset({"CHU-X"}))
    with caplog.at_level(logging.DEBUG):
        on_frame(h, adt("P-1", pid_name=secret))
        on_frame(h, adt("P-2", pid_name=secret, facility="OTHER"))
        on_frame(h, adt("P-3", pid_name=secret).replace(b"DUPONT", b"DUP\xffONT"))
        journal.fail = True
        on_frame(h, adt("P-4", pid_name=secret))
        journal.fail = False
        journal.crash = True
        on_frame(h, adt("P-5", pid_name=secret))
        on_error(h, ProtocolError("oversize", 1001, adt("P-6", pid_name=secret)))
        on_error(h, ProtocolError("bad_end", 50, adt("P-7", pid_name=secret)))
    assert caplog.records
    assert "DUPONT" not in caplog.text and "JEANNE" not in caplog.text
    for record in caplog.records:
        assert "DUPONT" not in record.getMessage()


def test_ack_control_ids_are_20_characters_and_never_repeat_within_a_process() -> None:
    ids = [new_control_id() for _ in range(10_000)]
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[:10] for i in ids}) == 1  # one random prefix, then the counter


def test_a_forked_child_draws_its_own_ack_id_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next id and leave at once
        os.write(write, new_control_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    assert len(theirs) == 20 and theirs[:10] != new_control_id()[:10]
