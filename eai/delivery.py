"""Delivery workers: send outbox rows through destination connectors, in order per patient.

Touches: DB (through the writer thread), network (through the connectors).

One worker per destination. It leases a window of sendable rows (see
:func:`eai.store.claim_deliveries`), sends each patient's chain in
order, patients in parallel, and records every attempt. A transient failure
schedules a retry with exponential backoff and jitter and stops that
patient's chain; a permanent one (or ``max_attempts`` reached) dead-letters
the row and lets the chain go on. The follow-ups of a final outcome (the
result's, or the error's when it dead-letters: :class:`eai.messages.FollowUp`)
are recorded with it, in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timedelta
from time import perf_counter

from eai._worker import BATCH_WAIT, WorkerLoop
from eai.config import DestinationConfig, RetryPolicy
from eai.content import media_type_of
from eai.errors import PermanentDeliveryError, StoreError, TransientDeliveryError
from eai.messages import NO_FACTS, MessageFacts, OutboxItem
from eai.metrics import destination_meter
from eai.net import run_blocking
from eai.registry import AttemptsAware, Destination
from eai.store import (
    Cipher,
    ClaimedDelivery,
    DeliveryOutcome,
    Store,
    attempt_details,
    claim_deliveries,
    record_outcomes,
    utcnow,
)

__all__ = ["DeliveryWorker", "backoff_delay", "outbox_item"]

log = logging.getLogger(__name__)
_RNG = random.Random()


def backoff_delay(policy: RetryPolicy, attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1-based)."""
    base: float = min(policy.max, policy.initial * (2.0 ** max(0, attempts - 1)))
    spread = base * policy.jitter
    r: float = (rng or _RNG).uniform(-spread, spread)
    return max(0.0, min(policy.max, base + r))


def outbox_item(row: ClaimedDelivery, cipher: Cipher, attempts: int) -> OutboxItem:
    """The destination contract's view of a claimed outbox row (payload and facts opened;
    a row older than the contract gets its message's media type, no mapping, no facts)."""
    facts = NO_FACTS
    if row.sealed_facts is not None:
        facts = MessageFacts.from_json(cipher.open(row.sealed_facts))
    return OutboxItem(
        row.id,
        row.message_id,
        row.destination,
        cipher.open(row.sealed_payload),
        row.control_id,
        row.patient_key,
        attempts,
        media_type=row.media_type or media_type_of(row.content_type),
        route=row.route,
        mapping=row.mapping,
        facts=facts,
        return_to=row.return_to,
    )


class DeliveryWorker:
    """Drains the outbox of one destination."""

    def __init__(
        self,
        config: DestinationConfig,
        destination: Destination,
        store: Store,
        node_id: str,
        *,
        window: int = 200,
        lease: float = 60.0,
        concurrency: int = 1,
        pace: float = BATCH_WAIT,
    ) -> None:
        self.name = config.name
        self._policy = config.retry
        self._dest = destination
        self._store = store
        self._node = node_id
        self._lease = lease
        self._sem = asyncio.Semaphore(max(1, concurrency))
        self._loop = WorkerLoop(
            f"delivery worker {self.name}",
            self._claim,
            self._process,
            batch=window,
            batch_wait=pace,
        )
        self.wake = self._loop.wake
        self.sent = 0
        self._meter = destination_meter(self.name)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        """Leases up to ``limit`` sendable rows of this destination."""
        return await self._store.writer.run(
            lambda c: claim_deliveries(c, self.name, self._node, utcnow(), self._lease, limit)
        )

    async def _process(self, claimed: list[ClaimedDelivery]) -> None:
        """Sends the window, each patient's chain in order, and records the outcomes."""
        chains: OrderedDict[str, list[ClaimedDelivery]] = OrderedDict()
        for row in claimed:
            chains.setdefault(row.patient_key, []).append(row)
        results = await asyncio.gather(*(self._send_chain(ch) for ch in chains.values()))
        outcomes = [o for chain in results for o in chain]
        cipher = self._store.cipher
        await self._store.writer.run(lambda c: record_outcomes(c, outcomes, utcnow(), cipher))
        self._meter.outcomes(o.status for o in outcomes)

    async def _send_chain(self, chain: list[ClaimedDelivery]) -> list[DeliveryOutcome]:
        out: list[DeliveryOutcome] = []
        async with self._sem:
            for i, row in enumerate(chain):
                outcome = await self._attempt(row)
                out.append(outcome)
                if outcome.status == "retrying":
                    now = utcnow()
                    out.extend(
                        DeliveryOutcome(r.id, r.message_id, "pending", r.attempts, now, "")
                        for r in chain[i + 1 :]
                    )
                    break
        return out

    async def _attempt(self, row: ClaimedDelivery) -> DeliveryOutcome:
        attempts = row.attempts + 1
        now = utcnow()
        try:
            item = outbox_item(row, self._store.cipher, attempts)
            started = perf_counter()
            try:
                result = await self._dest.send(item)
            finally:
                self._meter.send_seconds.observe(perf_counter() - started)
        except PermanentDeliveryError as exc:
            log.error(
                "delivery %d to %s dead-lettered (attempt %d): %s", row.id, self.name, attempts, exc
            )
            return DeliveryOutcome(
                row.id, row.message_id, "dead", attempts, now, str(exc), exc.follow_ups
            )
        except TransientDeliveryError as exc:
            detail = str(exc) or type(exc).__name__
            outcome = self._retry(row, attempts, now, detail, exc.retry_after)
            if outcome.status == "dead":  # given up: the failure is final
                outcome = replace(outcome, follow_ups=exc.follow_ups)
            return outcome
        except (StoreError, OSError) as exc:
            return self._retry(row, attempts, now, str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a connector bug must not stop the worker
            log.exception("delivery %d to %s: unexpected error", row.id, self.name)
            return self._retry(row, attempts, now, f"internal error: {type(exc).__name__}")
        self.sent += 1
        return DeliveryOutcome(
            row.id, row.message_id, "delivered", attempts, now, result.detail, result.follow_ups
        )

    def _retry(
        self,
        row: ClaimedDelivery,
        attempts: int,
        now: datetime,
        detail: str,
        at_least: float | None = None,
    ) -> DeliveryOutcome:
        limit = self._policy.max_attempts
        if limit is not None and attempts >= limit:
            log.error(
                "delivery %d to %s dead-lettered after %d attempts: %s",
                row.id,
                self.name,
                attempts,
                detail,
            )
            return DeliveryOutcome(
                row.id,
                row.message_id,
                "dead",
                attempts,
                now,
                f"gave up after {attempts} attempts: {detail}",
            )
        delay = backoff_delay(self._policy, attempts)
        if at_least is not None:  # the peer's Retry-After, counted from its answer (now)
            delay = max(delay, at_least + (utcnow() - now).total_seconds())
        retry_at = now + timedelta(seconds=delay)
        log.warning(
            "delivery %d to %s failed (attempt %d): %s; next retry at %sZ (in %.1f s)",
            row.id,
            self.name,
            attempts,
            detail,
            retry_at.isoformat(timespec="seconds"),
            delay,
        )
        return DeliveryOutcome(row.id, row.message_id, "retrying", attempts, retry_at, detail)

    async def _attempt_details(self, delivery_id: int) -> tuple[str, ...]:
        """:data:`eai.registry.AttemptsReader` over the journal."""
        store = self._store

        def read() -> tuple[str, ...]:
            with store.engine.connect() as conn:
                return attempt_details(conn, delivery_id)

        return await run_blocking(read)

    async def run(self, stopping: asyncio.Event) -> None:
        """Prepares the destination, sends windows until ``stopping`` (see
        :mod:`eai._worker`), then closes the destination."""
        if isinstance(self._dest, AttemptsAware):
            self._dest.read_attempts_with(self._attempt_details)
        try:
            await self._dest.start()
        except Exception:  # noqa: BLE001 - the first send tries again (and reports)
            log.exception("destination %s: could not prepare; first send will retry", self.name)
        await self._loop.run(stopping)
        await self._dest.close()
