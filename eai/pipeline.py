"""The pipeline: takes journaled messages in arrival order, parses, routes, fills the outbox.

Touches: DB (through the writer thread).

For each message, :func:`plan_message` decides (pure: decrypt, parse, route)
and :func:`eai.store.apply_plans` writes the outbox rows and the new
status in ONE transaction (transactional outbox). Replay uses the same plan.

This module is the worker (claim, plan, apply, retry the held); planning one
message is :mod:`eai._plan`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from eai._plan import Parsed, identities_of, parse_all, plan_all, plan_message
from eai._plan_pool import PlanPool
from eai._worker import BATCH_WAIT, WorkerLoop
from eai.config import Config
from eai.identity_gate import SERVER_UNAVAILABLE
from eai.ingest_activity import IngestActivity
from eai.metrics import planned
from eai.net import run_blocking
from eai.reconciler import Reconciler
from eai.store import (
    Cipher,
    ClaimedMessage,
    MessagePlan,
    Store,
    apply_plans,
    claim_messages,
    held_messages,
    settle_held,
    utcnow,
)
from identity.pdqm import IdentityServerUnavailable

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["Parsed", "Pipeline", "identities_of", "parse_all", "plan_all", "plan_message"]

log = logging.getLogger(__name__)


def _apply(conn: Connection, *, plans: list[MessagePlan], cipher: Cipher) -> object:
    return apply_plans(conn, plans, utcnow(), cipher=cipher)


SHARED_APPLY = 32
"""Plans per transaction when a listener in its own process writes the SQLite journal
too: each commit holds the journal's write lock, which that listener's commits (and so
its ACKs) wait for; a batch of 200 plans held it for tens of ms. Each plan is applied
whole in one part; a part that fails leaves the later ones claimed, for the next round."""


INGEST_FIRST_LAG = 10.0
"""Seconds: once the oldest message of a batch waited longer, the pipeline stops waiting
for the listeners' processes to be quiet (``engine.ingest_first``) until it has caught
up. A burst is absorbed by the journal; a feed faster than the pipeline's share for
longer is not hidden behind a growing backlog: the pipeline takes its full share again,
and the listener's commits, so its ACKs, slow down (the back-pressure its senders see)."""


class Pipeline:
    """Moves ``received`` messages to ``processed``/``filtered``/``rejected``."""

    def __init__(
        self,
        config: Config,
        store: Store,
        node_id: str,
        on_routed: Callable[[set[str]], None] = lambda _d: None,
        on_reject_anomaly: Callable[[], None] = lambda: None,
        *,
        pace: float = BATCH_WAIT,
        reconciler: Reconciler | None = None,
        planner: PlanPool | None = None,
        ingest: IngestActivity | None = None,
    ) -> None:
        self._config = config
        self._ingest = ingest
        self._behind = False
        """The last batch's oldest message waited more than :data:`INGEST_FIRST_LAG`."""
        self._reconciler = reconciler
        self._planner = planner
        self._store = store
        self._node = node_id
        self._on_routed = on_routed
        self._on_reject_anomaly = on_reject_anomaly
        self._loop = WorkerLoop(
            "pipeline",
            self._claim,
            self._process,
            batch=config.engine.pipeline_batch,
            batch_wait=pace,
        )
        self.wake = self._loop.wake
        self.processed = 0

    def reconfigure(self, config: Config) -> None:
        """Plans the next batches under ``config`` (a reload: routes, mappings, charter)."""
        self._config = config

    async def _claim(self, limit: int) -> list[ClaimedMessage]:
        """Leases up to ``limit`` received messages, oldest first; on an SQLite journal
        that a listener's own process writes too, once that process is quiet or
        ``engine.ingest_first`` has passed (not while the pipeline is more than
        :data:`INGEST_FIRST_LAG` behind). On PostgreSQL the processes do not take turns
        on one lock: measured, waiting there gained 5-7 % of ACKs for 10-20 % of
        end-to-end (docs/benchmarks.md, Session 12), so the pipeline does not wait."""
        engine = self._config.engine
        if (
            self._ingest is not None
            and engine.ingest_first > 0
            and self._store.shares_writes
            and not self._behind
        ):
            await self._ingest.quiet(engine.ingest_first)
        lease = engine.lease
        now = utcnow()
        claimed = await self._store.writer.run(
            lambda c: claim_messages(c, self._node, now, lease, limit)
        )
        self._behind = bool(claimed) and (
            (now - claimed[0].received_at).total_seconds() > INGEST_FIRST_LAG
        )
        return claimed

    async def _process(self, claimed: list[ClaimedMessage]) -> None:
        """Plans the messages and applies the plans in one transaction, or in parts of
        :data:`SHARED_APPLY` when another process writes the SQLite journal too."""
        cipher = self._store.cipher
        plans = await self._plan(claimed)
        step = SHARED_APPLY if self._store.shares_writes else max(len(plans), 1)
        for start in range(0, len(plans), step):
            part = plans[start : start + step]
            await self._store.writer.run(functools.partial(_apply, plans=part, cipher=cipher))
        self.processed += len(plans)
        self._after(plans, {d.destination for p in plans for d in p.deliveries})

    async def _plan(
        self, claimed: list[ClaimedMessage], *, retrying: bool = False
    ) -> list[MessagePlan]:
        """Plans the messages, after asking the identity server about their identities
        (parsed once for both). Retrying: [] while the server still cannot be asked."""
        if self._planner is not None:
            return await self._plan_in_processes(self._planner, claimed, retrying)
        cipher = self._store.cipher
        config = self._config  # one config for the whole batch, even if a reload swaps it
        if self._reconciler is None:
            return await run_blocking(plan_all, config, cipher, claimed)
        parsed = await run_blocking(parse_all, config, cipher, claimed)
        identities = identities_of(config, claimed, parsed)
        reconciled = await self._reconciler.reconcile_all(identities)
        if retrying and any(isinstance(r, IdentityServerUnavailable) for r in reconciled.values()):
            return []
        return await run_blocking(plan_all, config, cipher, claimed, reconciled, parsed)

    async def _plan_in_processes(
        self, planner: PlanPool, claimed: list[ClaimedMessage], retrying: bool
    ) -> list[MessagePlan]:
        """As :meth:`_plan`, in the planning processes (``engine.plan_processes``)."""
        if self._reconciler is None:
            return await planner.plans(claimed, None)
        identities = await planner.identities(claimed)
        reconciled = await self._reconciler.reconcile_all(identities)
        if retrying and any(isinstance(r, IdentityServerUnavailable) for r in reconciled.values()):
            return []
        return await planner.plans(claimed, reconciled)

    def _after(self, plans: list[MessagePlan], destinations: set[str]) -> None:
        planned((p.status for p in plans), ((r, sev) for p in plans for r, sev, _ in p.anomalies))
        if any(sev == "reject" for p in plans for _, sev, _ in p.anomalies):
            self._on_reject_anomaly()
        if destinations:
            self._on_routed(destinations)

    async def retry_unavailable(self, limit: int = 500) -> int:
        """Reconciles again the messages held while the identity server was unreachable:
        their deliveries go when it qualifies the identity, or stay held for the rule it
        broke (an anomaly, as for a new message). Returns how many messages it settled."""
        if self._reconciler is None or self._reconciler.unavailable_now():
            return 0
        held = await self._store.writer.run(lambda c: held_messages(c, SERVER_UNAVAILABLE, limit))
        if not held:
            return 0
        plans = await self._plan(held, retrying=True)
        if not plans:
            return 0  # still down: ask again at the next retry
        cipher = self._store.cipher
        released = await self._store.writer.run(
            lambda c: settle_held(c, plans, SERVER_UNAVAILABLE, utcnow(), cipher=cipher)
        )
        log.info(
            "identity server answers again: %d held message(s) reconciled, %d delivery(ies) "
            "released",
            len(plans),
            len(released),
        )
        self._after(plans, set(released))
        return len(plans)

    async def run(self, stopping: asyncio.Event) -> None:
        """Processes batches until ``stopping`` is set (see :mod:`eai._worker`)."""
        await self._loop.run(stopping)
