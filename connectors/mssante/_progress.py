"""What one MSSanté delivery's mails already did: written in a failed attempt's detail, read back.

Touches: nothing (text in, text out).

One delivery is one mail per recipient set (``part``: the professionals', the patient's).
When an attempt fails after some parts were submitted (a 4xx, a lost connection on the
next mail), the error it raises ends with one marker per part done, which the delivery
worker journals as the attempt's detail (and logs)::

    [mss-sent Message-ID <eai.7.…@labo.mssante.fr> {"part": "professionals",
        "mid": "<eai.7.…@labo.mssante.fr>", "dsn": true, "acc": [0],
        "ref": [[1, 550, "5.1.1 <<rcpt 1>>: unknown user"]]}]

Recipients are named by their rank in the part's mail (the mails are built again, in the
same order, from the same delivery): a marker carries no address at all, and a refusal's
text has each recipient's address replaced by its rank (the patient's INS by ``<INS>``).
:func:`read_progress` reads the markers of every earlier attempt back (a later one wins
for a part); a marker that does not parse, or names a recipient the mail does not have,
is ignored (that part is sent again: at least once, never lost). A part the server took
is named ``Message-ID <...>`` before its JSON, as a delivered detail names it: the
receipts reader finds it there (a dead letter after a mail was accepted carries the
markers too).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connectors.mssante._mail import Mail
from connectors.mssante._smtp import Refusal, Submission

__all__ = ["MARKER", "Sent", "progress_markers", "read_progress"]

MARKER = "[mss-sent "


@dataclass(frozen=True, slots=True)
class Sent:
    """One part's submission: its Message-ID, what the detail says, what the server took."""

    part: str
    message_id: str
    text: str
    submission: Submission

    @property
    def delivered(self) -> bool:
        return bool(self.submission.accepted)

    @property
    def accepted(self) -> tuple[str, ...]:
        return self.submission.accepted

    @property
    def refused(self) -> tuple[Refusal, ...]:
        return self.submission.refused


def _hide(mail: Mail, text: str) -> str:
    for rank, address in sorted(enumerate(mail.recipients), key=lambda r: -len(r[1])):
        text = text.replace(address, f"<rcpt {rank}>")
    if mail.part == "patient":
        for address in mail.recipients:
            text = text.replace(address.split("@", 1)[0], "<INS>")
    return text


def _show(mail: Mail, text: str) -> str:
    for rank, address in enumerate(mail.recipients):
        text = text.replace(f"<rcpt {rank}>", address)
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
            "dsn": sent.submission.dsn,
            "acc": [rank[a] for a in sent.accepted if a in rank],
            "ref": [
                [rank[r.address], r.code, _hide(mail, r.text)]
                for r in sent.refused
                if r.address in rank
            ],
        }
        # "Message-ID <...>" as the detail of a delivered mail says it (the receipts
        # reader looks for it); the JSON is what a retry reads
        named = f"Message-ID {sent.message_id} " if sent.delivered else ""
        out.append(f" {MARKER}{named}{json.dumps(record, ensure_ascii=False)}]")
    return "".join(out)


def _records(detail: str) -> Iterable[dict[str, object]]:
    decoder = json.JSONDecoder()
    at = detail.find(MARKER)
    while at >= 0:
        start = at + len(MARKER)
        brace = detail.find("{", start)
        try:
            record, _ = decoder.raw_decode(detail, brace if brace >= 0 else start)
        except ValueError:
            record = None
        if isinstance(record, dict):
            yield record
        at = detail.find(MARKER, start)


def _submission(record: dict[str, object], mail: Mail) -> tuple[str, Submission] | None:
    n = len(mail.recipients)
    acc, ref, mid, dsn = record.get("acc"), record.get("ref"), record.get("mid"), record.get("dsn")
    if not (isinstance(acc, list) and isinstance(ref, list) and isinstance(mid, str)):
        return None
    if not isinstance(dsn, bool) or not all(isinstance(i, int) and 0 <= i < n for i in acc):
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
        refused.append(Refusal(mail.recipients[r[0]], r[1], _show(mail, r[2])))
    accepted = tuple(mail.recipients[i] for i in acc)
    return mid, Submission(accepted, tuple(refused), dsn)


def read_progress(
    details: Iterable[str], mails: Sequence[Mail]
) -> dict[str, tuple[str, Submission]]:
    """Per part of ``mails`` that earlier attempts (their ``details``, oldest first)
    recorded as done: its Message-ID and what the server took."""
    by_part = {m.part: m for m in mails}
    done: dict[str, tuple[str, Submission]] = {}
    for detail in details:
        for record in _records(detail):
            mail = by_part.get(str(record.get("part")))
            got = _submission(record, mail) if mail is not None else None
            if got is not None and mail is not None:
                done[mail.part] = got
    return done
