"""Sends identity anomaly mails: immediately for reject-level rules, else a periodic digest.

Touches: DB (through the writer thread), network (SMTP, through identity.notify).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import smtplib

from eai.config import IdentityConfig
from eai.net import run_blocking
from eai.store import Store, mark_notified, pending_for_notification, utcnow
from identity.notify import build_mail, send_mail

__all__ = ["AnomalyMailer"]

log = logging.getLogger(__name__)

ALL = ("reject", "hold", "warn")


class AnomalyMailer:
    """``urgent()`` after a reject-level anomaly; ``digest()`` every period."""

    def __init__(self, store: Store, config: IdentityConfig, *, debounce: float = 0.2) -> None:
        self._store = store
        self._config = config
        self._debounce = debounce
        self._urgent = asyncio.Event()
        self.mails_sent = 0

    def urgent(self) -> None:
        self._urgent.set()

    def check_sendable(self) -> bool:
        """Says once, as a WARNING, that anomalies will not be mailed (no ``identity.smtp``);
        the engine calls it at start-up and after a reload that removes the SMTP server."""
        if self._config.smtp is not None:
            return True
        log.warning(
            "identity.smtp is not set: anomalies will be stored, not mailed "
            "(eai identity anomalies lists them)"
        )
        return False

    def reconfigure(self, config: IdentityConfig) -> None:
        """Takes a reloaded identity section (contacts, SMTP server) for the next mails."""
        unset = config.smtp is None and self._config.smtp is not None
        self._config = config
        if unset:
            self.check_sendable()

    async def notify(self, severities: tuple[str, ...], *, immediate: bool) -> int:
        smtp = self._config.smtp
        if smtp is None:
            return 0
        pending = await self._store.writer.run(
            lambda c: pending_for_notification(c, severities=severities)
        )
        sent = 0
        for facility, (ids, lines) in pending.items():
            to = list(self._config.contacts.get(facility, ()))
            if not to:
                log.warning("identity anomalies for %s: no contact configured", facility)
                continue
            mail = build_mail(facility, lines, sender=smtp.sender, to=to, immediate=immediate)
            try:
                await run_blocking(send_mail, smtp, mail)
            except (OSError, smtplib.SMTPException) as exc:
                log.error(
                    "anomaly mail to %s not sent (%s): will retry", facility, type(exc).__name__
                )
                continue
            await self._store.writer.run(
                functools.partial(mark_notified, ids=list(ids), now=utcnow())
            )
            sent += 1
            log.info("anomaly mail sent to %s: %d rule(s)", facility, len(lines))
        self.mails_sent += sent
        return sent

    async def digest(self) -> int:
        return await self.notify(ALL, immediate=False)

    async def run(self, stopping: asyncio.Event) -> None:
        """Immediate mails for rejects; the digest runs from the engine's scheduler."""
        while not stopping.is_set():
            waiter = asyncio.create_task(self._urgent.wait())
            stop = asyncio.create_task(stopping.wait())
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stop):
                t.cancel()
            if stopping.is_set():
                return
            await asyncio.sleep(self._debounce)  # group the rejects of a burst in one mail
            self._urgent.clear()
            try:
                await self.notify(("reject",), immediate=True)
            except Exception:  # noqa: BLE001 - mail trouble never stops the engine
                log.exception("immediate anomaly mail failed")
