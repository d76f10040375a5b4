"""Asks the regional identity server about each message's identity, and says when it is down.

Touches: network (the identity server through :class:`identity.pdqm.IdentityServerClient`;
SMTP for the outage alerts).

The pipeline hands it the identities of a batch; each is reconciled concurrently (the
client caches answers and shares identical requests). A server that cannot be asked
makes :class:`identity.pdqm.IdentityServerUnavailable` the answer for that message:
the pipeline holds its strict deliveries and asks again later. The first failure of an
outage logs a warning and mails ``identity.server.alert_to``; the first answer after it
logs and mails the end of the outage. Logs and mails name no patient.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage

from eai.config import IdentityConfig
from eai.identity_gate import Reconciled
from eai.net import run_blocking
from identity.notify import send_mail
from identity.patient import PatientIdentity
from identity.pdqm import IdentityServerClient, IdentityServerUnavailable
from identity.reconcile import reconcile

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)


class Reconciler:
    """Reconciles identities with one identity server and tracks its outages."""

    def __init__(
        self,
        client: IdentityServerClient,
        config: IdentityConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock
        self.outage_since: float | None = None
        """Monotonic time of the first failure of the current outage; None when up."""
        self._retry_at = 0.0
        self._alerts: set[asyncio.Task[None]] = set()
        self.alerts_sent = 0

    def unavailable_now(self) -> bool:
        """The server failed lately and asking again is not worth it yet."""
        return self.outage_since is not None and self._clock() < self._retry_at

    async def reconcile_all(
        self, identities: Mapping[int, PatientIdentity]
    ) -> dict[int, Reconciled]:
        """What the server says of each identity (by message id)."""
        ids = list(identities)
        answers = await asyncio.gather(*(self._one(identities[i]) for i in ids))
        return dict(zip(ids, answers, strict=True))

    async def _one(self, identity: PatientIdentity) -> Reconciled:
        try:
            found = await reconcile(self._client, identity)
        except IdentityServerUnavailable as exc:
            self._down(exc)
            return exc
        self._up()
        return found

    def _down(self, exc: IdentityServerUnavailable) -> None:
        self._retry_at = self._clock() + exc.retry_after
        if self.outage_since is not None:
            return
        self.outage_since = self._clock()
        log.warning(
            "identity server unavailable (%s): deliveries that need a qualified identity are "
            "held and reconciled again when it answers",
            exc.reason,
        )
        self._alert(
            "[eai] Serveur régional d'identités injoignable",
            "Le serveur régional d'identités ne répond pas "
            f"({exc.reason}).\n\nLes messages continuent d'être reçus et acquittés ; leurs "
            "envois vers les destinations qui exigent une identité qualifiée (DMP, MSSanté…) "
            "sont mis en attente et seront rapprochés puis transmis dès que le serveur "
            "répondra.\n\n-- eai, plateforme régionale d'interopérabilité",
        )

    def _up(self) -> None:
        if self.outage_since is None:
            return
        lasted = self._clock() - self.outage_since
        self.outage_since = None
        log.warning("identity server answers again after %.0f s", lasted)
        self._alert(
            "[eai] Serveur régional d'identités de nouveau joignable",
            f"Le serveur régional d'identités répond de nouveau (interruption de {lasted:.0f} s)."
            "\n\nLes messages mis en attente pendant l'interruption sont rapprochés et "
            "transmis.\n\n-- eai, plateforme régionale d'interopérabilité",
        )

    def _alert(self, subject: str, body: str) -> None:
        server, smtp = self._config.server, self._config.smtp
        if server is None or smtp is None or not server.alert_to:
            return
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = smtp.sender
        mail["To"] = ", ".join(server.alert_to)
        mail.set_content(body)

        async def send() -> None:
            try:
                await run_blocking(send_mail, smtp, mail)
            except (OSError, smtplib.SMTPException) as exc:
                log.error("identity server alert not sent (%s)", type(exc).__name__)
                return
            self.alerts_sent += 1

        task = asyncio.get_running_loop().create_task(send())
        self._alerts.add(task)
        task.add_done_callback(self._alerts.discard)

    async def aclose(self) -> None:
        """Waits for the alerts being sent, then closes the client."""
        if self._alerts:
            await asyncio.gather(*self._alerts, return_exceptions=True)
        await self._client.aclose()
