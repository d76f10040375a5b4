"""The ``mssante_receipts`` listener: delivery and read receipts read over IMAP, and their ZAMs.

Touches: network (IMAP over TLS to the operator's server), DB (through the engine's
:class:`eai.registry.ReceiptJournal`), files (the TLS certificate and key, read when built).

A listener, not a periodic job: it is an inbound endpoint with its own block in
``routes.yaml`` (server, TLS, credentials, folders, checked by ``eai check`` and the
schema), its own lifecycle (the mail in hand finishes on stop) and its own poll pace; a
:class:`eai.registry.PeriodicSpec` has no config of its own. It journals nothing new: it
adds to the journey of messages already delivered.

Every ``poll_interval`` it opens the application mailbox (:mod:`._imap`), and for each
mail of ``folder`` (oldest first, ``batch`` at most):

1. reads it without marking it seen, parses it (:mod:`._reports`), finds the delivery it
   names, and checks it against that delivery's journal (:mod:`._correlate`);
2. journals it: a ``receipt`` event on the source message and the ZAM^Z02 / ZAM^Z03
   follow-ups to the route's ``business_acks`` destination, in ONE transaction, keyed by
   the receipt mail (its Message-ID, else its SHA-256) so that reading it again adds
   nothing (:func:`eai.store.record_receipt`);
3. moves it to ``processed``. A crash between 2 and 3 leaves the mail where it was: the
   next poll journals nothing and moves it (no duplicate ZAM).

A report that is not believed while its delivery is not final (``retrying``: the attempt
that sent its mail is recorded only with the delivery's outcome) stays in ``folder`` and
is read again at each poll until the outcome is recorded.

A mail that is not a report, names no delivery of ours, or is not believed goes to
``quarantine`` with a keyword naming the reason (``EaiMalformed``, ``EaiUnknown``,
``EaiUnverified``, ``EaiTooLarge``); it is counted (:attr:`ReceiptsReader.quarantined`,
and ``eai_mssante_receipts_total{outcome="quarantined_<reason>"}`` beside ``journaled``
and ``already``) and logged at WARNING with its UID and reason, never its content.
Nothing is deleted. An IMAP or journal failure ends the pass; the next poll starts again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Literal

from pydantic import Field, SecretStr

from connectors.mssante._correlate import Unverified, decide
from connectors.mssante._imap import ImapError, ImapMailbox
from connectors.mssante._reports import MalformedReport, delivery_id_of, parse_report
from eai.config import Duration, ListenerConfig, TlsClientConfig
from eai.errors import InputError, NotFound, StoreError
from eai.metrics import receipts_meter
from eai.net import client_context, run_blocking
from eai.registry import Ingest, ListenerSpec, ReceiptJournal, register_listener

__all__ = ["MssanteReceiptsConfig", "PassReport", "ReceiptsReader"]

log = logging.getLogger(__name__)

_FOLDER = r"^[^\x00-\x1f\"\\*%]+$"


class MssanteReceiptsConfig(ListenerConfig):
    """MSSanté receipts: the application mailbox read over IMAP with TLS; delivery status
    (RFC 3464) and disposition (RFC 8098) notifications become ZAM^Z02 / ZAM^Z03."""

    type: Literal["mssante_receipts"] = "mssante_receipts"
    host: str = Field(min_length=1, description="the MSSanté operator's IMAP server")
    port: int = Field(993, ge=1, le=65535, description="its port (993 implicit TLS, 143 STARTTLS)")
    security: Literal["tls", "starttls"] = Field(
        "tls", description="TLS from the first byte, or STARTTLS before LOGIN"
    )
    tls: TlsClientConfig = Field(
        description="the application mailbox's client certificate and key, the CA of the "
        "server's certificate; TLS >= 1.2"
    )
    user: str = Field(min_length=1, description="IMAP login (the application mailbox)")
    password: SecretStr = Field(description="IMAP password; keep it in the environment")
    folder: str = Field("INBOX", pattern=_FOLDER, description="the folder receipts arrive in")
    processed: str = Field(
        "EAI-Processed", pattern=_FOLDER, description="where journaled receipts are moved"
    )
    quarantine: str = Field(
        "EAI-Quarantine",
        pattern=_FOLDER,
        description="where unknown, unverified or malformed mails are moved, with a keyword "
        "naming the reason",
    )
    poll_interval: Duration = Field(30.0, gt=0, description="time between two reads")
    batch: int = Field(200, ge=1, le=10000, description="mails read per poll at most")
    max_size: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="a larger mail is quarantined unread (bytes; an MDN may return the "
        "original and its attachments)",
    )
    timeout: Duration = Field(30.0, gt=0, description="time allowed for each IMAP answer")


@dataclass
class PassReport:
    """What one poll did."""

    journaled: int = 0
    zams: int = 0
    already: int = 0
    """Receipts journaled by an earlier pass, moved now."""
    waiting: int = 0
    """Reports left in the folder: not believed yet, their delivery not final."""
    quarantined: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Verdict:
    keyword: str = ""
    reason: str = ""
    recorded: bool = False
    zams: int = 0
    waiting: bool = False


_OUTCOMES = {
    "EaiMalformed": "quarantined_malformed",
    "EaiUnknown": "quarantined_unknown",
    "EaiUnverified": "quarantined_unverified",
    "EaiTooLarge": "quarantined_too_large",
}
"""Quarantine keyword -> ``outcome`` label of ``eai_mssante_receipts_total``."""


def _key(data: bytes) -> str:
    """The receipt mail's identity: its Message-ID, else its SHA-256."""
    headers = BytesHeaderParser().parsebytes(data[:65536])
    mid = " ".join(str(headers.get("Message-ID") or "").split())
    if mid and len(mid) <= 250:
        return mid
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _journal_of(ingest: object) -> ReceiptJournal:
    if isinstance(ingest, ReceiptJournal):
        return ingest
    raise TypeError("the receipts reader needs the engine's ReceiptJournal")


class ReceiptsReader:
    """Reads the application mailbox; see the module docstring."""

    def __init__(self, config: MssanteReceiptsConfig, ingest: Ingest) -> None:
        self.config = config
        self._journal = _journal_of(ingest)
        # Built now so that a bad certificate path fails at start, not at the first poll.
        self._context = client_context(config.tls)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.quarantined: Counter[str] = Counter()
        """Mails quarantined since start, by reason keyword."""
        self._meter = receipts_meter(config.name)

    def _mailbox(self) -> ImapMailbox:
        cfg = self.config
        return ImapMailbox(
            cfg.host,
            cfg.port,
            cfg.security,
            self._context,
            cfg.tls.server_hostname,
            cfg.user,
            cfg.password.get_secret_value(),
            cfg.timeout,
        )

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"mssante-receipts:{self.config.name}")

    async def stop(self, grace: float) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, timeout=max(grace, 0.1))
        except TimeoutError:
            log.warning("listener %s: stopped in the middle of a poll", self.config.name)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.poll()
            except (ImapError, StoreError) as exc:
                log.warning(
                    "listener %s: %s (next poll in %gs)",
                    self.config.name,
                    exc,
                    self.config.poll_interval,
                )
            except Exception:  # noqa: BLE001 - a listener never dies of one mail
                log.exception("listener %s: poll failed", self.config.name)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.config.poll_interval)
            except TimeoutError:
                pass

    async def poll(self) -> PassReport:
        """One pass over the folder. Raises ImapError, StoreError (the pass ends there;
        what was journaled stays, and its mails are moved by a later pass)."""
        cfg = self.config
        box = self._mailbox()
        report = PassReport()
        await run_blocking(box.open, cfg.folder, (cfg.processed, cfg.quarantine))
        try:
            for uid in await run_blocking(box.uids, cfg.batch):
                if self._stopping.is_set():
                    break
                verdict = await self._one(box, uid)
                if verdict is None:
                    continue
                if verdict.waiting:
                    report.waiting += 1
                    continue
                if verdict.keyword:
                    await run_blocking(box.move, uid, cfg.quarantine, (verdict.keyword,))
                    report.quarantined[verdict.keyword] += 1
                    self.quarantined[verdict.keyword] += 1
                    self._meter.count(_OUTCOMES[verdict.keyword])
                    log.warning(
                        "listener %s: mail UID %d quarantined (%s: %s); %d quarantined since start",
                        cfg.name,
                        uid,
                        verdict.keyword,
                        verdict.reason,
                        sum(self.quarantined.values()),
                    )
                    continue
                await run_blocking(box.move, uid, cfg.processed)
                if verdict.recorded:
                    report.journaled += 1
                    report.zams += verdict.zams
                else:
                    report.already += 1
                self._meter.count("journaled" if verdict.recorded else "already")
        finally:
            await run_blocking(box.close)
        if report.journaled or report.quarantined:
            log.info(
                "listener %s: %d receipt(s) journaled, %d ZAM(s), %d quarantined",
                cfg.name,
                report.journaled,
                report.zams,
                sum(report.quarantined.values()),
            )
        return report

    async def _one(self, box: ImapMailbox, uid: int) -> _Verdict | None:
        size = await run_blocking(box.size, uid)
        if size < 0:
            return None  # gone meanwhile (another reader moved it)
        if size > self.config.max_size:
            return _Verdict("EaiTooLarge", f"{size} bytes, over max_size")
        data = await run_blocking(box.fetch, uid)
        if data is None:
            return None
        try:
            parsed = parse_report(data)
        except MalformedReport as exc:
            return _Verdict("EaiMalformed", str(exc))
        except Exception as exc:  # noqa: BLE001 - one mail never blocks the mailbox
            log.exception("listener %s: mail UID %d unreadable", self.config.name, uid)
            return _Verdict("EaiMalformed", f"unreadable ({type(exc).__name__})")
        delivery_id = delivery_id_of(parsed)
        if delivery_id is None:
            return _Verdict("EaiUnknown", "it names no delivery of this engine")
        try:
            item, attempts, final = await self._journal.delivery_record(delivery_id)
            decision = decide(parsed, item, attempts)
        except NotFound:
            return _Verdict("EaiUnknown", f"no delivery {delivery_id} in the journal")
        except Unverified as exc:
            if not final:
                return _Verdict(waiting=True)  # its attempt may not be recorded yet
            return _Verdict("EaiUnverified", str(exc))
        except (InputError, ValueError) as exc:  # the source or the report unusable for a ZAM
            return _Verdict("EaiUnverified", f"no ZAM can be built ({type(exc).__name__})")
        try:
            recorded = await self._journal.record_receipt(
                delivery_id, _key(data), decision.detail, decision.follow_ups
            )
        except NotFound:
            return _Verdict("EaiUnknown", f"no delivery {delivery_id} in the journal")
        return _Verdict(recorded=recorded, zams=len(decision.follow_ups) if recorded else 0)


def _factory(config: MssanteReceiptsConfig, ingest: Ingest) -> ReceiptsReader:
    return ReceiptsReader(config, ingest)


register_listener(
    ListenerSpec(
        type_name="mssante_receipts",
        config_model=MssanteReceiptsConfig,
        factory=_factory,
        summary="MSSanté receipts: DSN / MDN mails read from the application mailbox over "
        "IMAP with TLS, journaled on the message they answer, ZAM^Z02 / ZAM^Z03 to its "
        "business_acks destination",
    )
)
