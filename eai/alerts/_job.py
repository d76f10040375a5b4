"""The engine's alerts job: measure every rule, move the state machines, send the mails owed.

Touches: DB (through :mod:`eai.store`), files (the probes'), network (SMTP, through
:func:`identity.notify.send_mail`, with ``identity.smtp``: the one SMTP sending of eai).

Run every ``alerts.every`` by the engine's scheduler (one run at a time). The
evaluation runs on a worker thread: probes, then one transaction under the alerts lock
that reads the rows, decides (:func:`eai.alerts._machine.decide`) and writes them with the
mails owed. Then each recipient whose oldest mail owed waited ``group_wait`` gets ONE
mail listing them all; the rows are claimed first (no other node sends them), marked
sent after the SMTP server took the mail, and retried later when it did not.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from eai.alerts._certs import ExpiryCache
from eai.alerts._machine import Observation, Policy, decide
from eai.alerts._mail import build_alert_mail
from eai.alerts._probes import PROBES, ProbeContext
from eai.alerts._signals import Signals
from eai.config import AlertRule, Config, IdentityServerAlertRule
from eai.net import run_blocking
from eai.store import (
    AlertChanges,
    AlertRow,
    Silence,
    Store,
    claim_notices,
    finish_notices,
    update_alerts,
    utcnow,
)
from identity.notify import send_mail

__all__ = ["Alerter", "active_rules"]

log = logging.getLogger(__name__)

_CLAIM = 60.0  # seconds a node holds the mails it is sending
_RETRY = 30.0  # seconds before mails the SMTP server refused are tried again
_DEFAULT_GROUP_WAIT = 0.0  # without an alerts: section (identity server outages only)
_DEFAULT_REPEAT = 4 * 3600.0


def active_rules(config: Config) -> tuple[AlertRule, ...]:
    """The configured rules; with ``identity.server.alert_to``, the identity server's rule
    is always among them (its outages were mailed before ``alerts:`` existed)."""
    rules: tuple[AlertRule, ...] = config.alerts.rules if config.alerts is not None else ()
    server = config.identity.server
    if (
        server is not None
        and server.alert_to
        and not any(r.rule == "identity_server" for r in rules)
    ):
        rules = (*rules, IdentityServerAlertRule())
    return rules


class Alerter:
    def __init__(
        self,
        store: Store,
        config: Config,
        node: str,
        signals: Signals,
        listener_ports: Callable[[], Mapping[str, int | None]],
        identity_down: Callable[[], bool],
    ) -> None:
        self._store = store
        self._config = config
        self._node = node
        self._signals = signals
        self._listener_ports = listener_ports
        self._identity_down = identity_down
        self._certs = ExpiryCache()
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.mails_sent = 0
        self._say_unsendable(config)

    def _say_unsendable(self, config: Config) -> None:
        if active_rules(config) and config.identity.smtp is None:
            log.warning(
                "alerts: identity.smtp is not set: alerts are kept (eai alerts list), not mailed"
            )

    def reconfigure(self, config: Config) -> None:
        """Takes a reloaded routes.yaml (rules, recipients, SMTP) for the next evaluation."""
        if config.identity.smtp is None and self._config.identity.smtp is not None:
            self._say_unsendable(config)
        self._config = config

    @property
    def every(self) -> float:
        alerts = self._config.alerts
        return alerts.every if alerts is not None else 5.0

    def wanted(self) -> bool:
        return bool(active_rules(self._config))

    async def aclose(self) -> None:
        """Lets a run in progress finish (a mail being sent is then marked sent, not sent
        again after a restart); no new run starts."""
        self._closed = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self) -> None:
        """One evaluation and the mails now due, on a task of its own: the scheduler's
        shutdown cancels the job, not the run (see :meth:`aclose`)."""
        if self._closed or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts")
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        """An error is logged (once until a run works again), never raised."""
        try:
            await run_blocking(self.evaluate)
            await self.send_due()
        except Exception:  # noqa: BLE001 - alerting trouble never stops the engine
            if not self._failing:
                log.exception("alerts: evaluation failed (said once until it works again)")
            self._failing = True
            return
        if self._failing:
            log.warning("alerts: evaluation works again")
        self._failing = False

    # -- evaluation (worker thread) ------------------------------------------------------

    def evaluate(self) -> AlertChanges:
        """Measures every rule and moves the alerts, in one transaction under the alerts
        lock (the measures are taken once the lock is held)."""
        config = self._config
        rules = active_rules(config)
        facilities = self._facilities_of(config)
        policy = Policy(
            repeat_every=config.alerts.repeat_every if config.alerts else _DEFAULT_REPEAT,
            hold_for={r.rule: r.for_ for r in rules},
            recipients=self._recipients_of(config),
        )

        def decide_now(
            rows: dict[tuple[str, str], AlertRow], silences: list[Silence], now: datetime
        ) -> AlertChanges:
            ctx = ProbeContext(
                config=config,
                engine=self._store.engine,
                node=self._node,
                local="" if self._store.is_sqlite else f"@{self._node}",
                listener_ports=dict(self._listener_ports()),
                signals=self._signals,
                identity_down=self._identity_down,
                certs=self._certs,
                facilities=facilities,
                now=now,
            )
            observations = [o for rule in rules for o in PROBES[rule.rule](rule, ctx)]
            seen = {(o.rule, o.scope) for o in observations}
            gone = [  # rows this node owns that nothing measures any more: resolved
                Observation(r.rule, r.scope, False, r.value, r.facilities, r.owner)
                for key, r in rows.items()
                if key not in seen and r.owner in ("", ctx.node) and r.state != "ok"
            ]
            return decide(rows, silences, [*observations, *gone], now, policy)

        changes = update_alerts(self._store.engine, decide_now)
        for row in changes.rows:
            if row.state in ("firing", "resolved"):
                log.warning("alert %s on %s: %s (%s)", row.rule, row.scope, row.state, row.value)
        return changes

    @staticmethod
    def _facilities_of(config: Config) -> Callable[[str], tuple[str, ...]]:
        senders = {
            lcfg.name: tuple(getattr(lcfg, "allowed_senders", None) or ())
            for lcfg in config.listeners
        }
        per_destination: dict[str, set[str]] = {}
        for route in config.routes:
            for dest in route.to:
                for source in route.from_:
                    per_destination.setdefault(dest, set()).update(senders.get(source, ()))

        def facilities(scope: str) -> tuple[str, ...]:
            kind, _, name = scope.partition(":")
            if kind == "listener":
                return senders.get(name, ())
            if kind == "destination":
                return tuple(sorted(per_destination.get(name, ())))
            if kind == "establishment":
                return (name,)
            return ()

        return facilities

    @staticmethod
    def _recipients_of(config: Config) -> Callable[[str, tuple[str, ...]], tuple[str, ...]]:
        alerts = config.alerts
        regional = list(alerts.notify) if alerts is not None else []
        contacts = config.identity.contacts
        server = config.identity.server
        per_facility = alerts is not None and alerts.establishment_contacts

        def recipients(rule: str, facilities: tuple[str, ...]) -> tuple[str, ...]:
            to = list(regional)
            if rule == "identity_server" and server is not None:
                to += server.alert_to
            if per_facility:
                for facility in facilities:
                    to += contacts.get(facility, ())
            return tuple(dict.fromkeys(to))

        return recipients

    # -- mails ------------------------------------------------------------------------

    async def send_due(self) -> int:
        smtp = self._config.identity.smtp
        if smtp is None:
            return 0
        alerts = self._config.alerts
        group_wait = alerts.group_wait if alerts is not None else _DEFAULT_GROUP_WAIT
        now = utcnow()
        due = await run_blocking(
            claim_notices, self._store.engine, self._node, now, group_wait, _CLAIM
        )
        sent = 0
        for recipient, notices in due.items():
            mail = build_alert_mail(recipient, notices, sender=smtp.sender, node=self._node)
            ids = [n.id for n in notices]
            try:
                await run_blocking(send_mail, smtp, mail)
            except (OSError, smtplib.SMTPException) as exc:
                log.error("alert mail to %s not sent (%s): retried", recipient, type(exc).__name__)
                retry = utcnow() + timedelta(seconds=_RETRY)
                await run_blocking(self._finish, ids, False, retry)
                continue
            await run_blocking(self._finish, ids, True, now)
            sent += 1
            log.info("alert mail sent to %s: %d alert(s)", recipient, len(notices))
        self.mails_sent += sent
        return sent

    def _finish(self, ids: list[int], sent: bool, retry_at: datetime) -> None:
        finish_notices(self._store.engine, ids, self._node, sent=sent, retry_at=retry_at)
