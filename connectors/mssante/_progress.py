"""What one MSSanté delivery's mails already did: written in a failed attempt's detail, read back.

Touches: nothing (text in, text out).

One delivery is one mail per recipient set (``part``: the professionals', the patient's).
When an attempt fails after some parts were submitted (a 4xx, a lost connection on the
next mail), the :class:`~eai.errors.TransientDeliveryError` it raises ends with one
marker per part done, which the delivery worker journals as the attempt's detail::

    [mss-sent {"part": "ps", "mid": "<...>", "ok": true, "text": "...",
               "acc": [0, 2], "ref": [[1, 550, "5.1.1 unknown"]]}]

``acc`` and ``ref`` name recipients by their rank in the part's mail (the mails are
built again, in the same order, from the same delivery), so the marker carries no
address the detail does not already show, and never the patient's (its INS): a refusal's
text of the patient's mail has the INS masked. :func:`read_progress` reads the markers
of every earlier attempt back (a later one wins for a part); a marker that does not
parse, or names a recipient the mail no longer has, is ignored (that part is sent again:
at least once, never lost).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connectors.mssante._mail import Mail
from connectors.mssante._smtp import Refusal

__all__ = ["MARKER", "Sent", "progress_markers", "read_progress"]

MARKER = "[mss-sent "


@dataclass(frozen=True, slots=True)
class Sent:
    """One part's submission: its Message-ID, what the detail says, who took it."""

    part: str
    message_id: str
    text: str
    delivered: bool
    refused: tuple[Refusal, ...] = ()
    accepted: tuple[str, ...] = ()


def _masked(mail: Mail, text: str) -> str:
    if mail.part != "patient":
        return text
    for address in mail.recipients:
        text = text.replace(address.split("@", 1)[0], "<INS>")
    return text


def progress_markers(done: Iterable[Sent], mails: Sequence[Mail]) -> str:
    """The markers of the parts ``done`` (each a part of ``mails``), to end a detail."""
    by_part = {m.part: m for m in mails}
    out: list[str] = []
    for sent in done:
        mail = by_part.get(sent.part)
        if mail is None:
            continue
        rank = {a: i for i, a in enumerate(mail.recipients)}
        record = {
            "part": sent.part,
            "mid": sent.message_id,
            "ok": sent.delivered,
            "text": sent.text,
            "acc": [rank[a] for a in sent.accepted if a in rank],
            "ref": [
                [rank[r.address], r.code, _masked(mail, r.text)]
                for r in sent.refused
                if r.address in rank
            ],
        }
        out.append(f" {MARKER}{json.dumps(record, ensure_ascii=False)}]")
    return "".join(out)


def _records(detail: str) -> Iterable[dict[str, object]]:
    decoder = json.JSONDecoder()
    at = detail.find(MARKER)
    while at >= 0:
        start = at + len(MARKER)
        try:
            record, _ = decoder.raw_decode(detail, start)
        except ValueError:
            record = None
        if isinstance(record, dict):
            yield record
        at = detail.find(MARKER, start)


def _sent(record: dict[str, object], mail: Mail) -> Sent | None:
    n = len(mail.recipients)
    acc, ref = record.get("acc"), record.get("ref")
    mid, text, ok = record.get("mid"), record.get("text"), record.get("ok")
    if not (isinstance(acc, list) and isinstance(ref, list) and isinstance(mid, str)):
        return None
    if not (isinstance(text, str) and isinstance(ok, bool)):
        return None
    if not all(isinstance(i, int) and 0 <= i < n for i in acc):
        return None
    refused: list[Refusal] = []
    for r in ref:
        if not (
            isinstance(r, list)
            and len(r) == 3
            and isinstance(r[0], int)
            and 0 <= r[0] < n
            and isinstance(r[1], int)
            and isinstance(r[2], str)
        ):
            return None
        refused.append(Refusal(mail.recipients[r[0]], r[1], r[2]))
    accepted = tuple(mail.recipients[i] for i in acc)
    return Sent(mail.part, mid, text, ok, tuple(refused), accepted)


def read_progress(details: Iterable[str], mails: Sequence[Mail]) -> dict[str, Sent]:
    """The parts of ``mails`` that earlier attempts (their ``details``, oldest first)
    recorded as done."""
    by_part = {m.part: m for m in mails}
    done: dict[str, Sent] = {}
    for detail in details:
        for record in _records(detail):
            mail = by_part.get(str(record.get("part")))
            sent = _sent(record, mail) if mail is not None else None
            if sent is not None:
                done[sent.part] = sent
    return done
