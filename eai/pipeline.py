"""The pipeline: takes journaled messages in arrival order, parses, routes, fills the outbox.

Touches: DB (through the writer thread).

For each message, :func:`plan_message` decides (pure: decrypt, parse, route)
and :func:`eai.store._work.apply_plans` writes the outbox rows and the new
status in ONE transaction (transactional outbox). Replay uses the same plan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from eai import hl7, routing
from eai._concurrency import run_blocking
from eai.config import Config, ListenerConfig
from eai.content import content_parser
from eai.errors import InputError, StoreError
from eai.hl7 import structure_problem
from eai.store import Cipher, ClaimedMessage, MessagePlan, PlannedDelivery, Store
from eai.store._work import apply_plans, claim_messages

__all__ = ["Pipeline", "plan_message"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _listener(config: Config, name: str) -> ListenerConfig | None:
    for lst in config.listeners:
        if lst.name == name:
            return lst
    return None


def plan_message(config: Config, cipher: Cipher, claimed: ClaimedMessage) -> MessagePlan:
    """Decides the fate of one journaled message under ``config`` (no I/O)."""
    parser = content_parser(claimed.content_type)
    if parser is None:
        return MessagePlan(
            claimed.id, "rejected", reason=f"no parser for content type {claimed.content_type}"
        )
    payload = cipher.open(claimed.sealed_payload)
    try:
        content = parser(payload, _listener(config, claimed.listener))
    except InputError as exc:
        return MessagePlan(claimed.id, "rejected", reason=exc.reason)
    msg = content.routable
    key = content.patient
    id_hashes = tuple(sorted({cipher.hash_id(i) for i in key.identifiers}))
    decision = routing.evaluate(config.routes, claimed.listener, msg)
    routes = [r for r in config.routes if r.name in decision.routes]
    problem: str | None = None
    if any(r.validate_structure for r in routes):
        problem = structure_problem(msg) if isinstance(msg, hl7.Hl7Message) else None
        if problem is not None:
            routes = [r for r in routes if not r.validate_structure]
    by_dest: dict[str, str] = {}
    for route in routes:
        for dest in route.to:
            by_dest.setdefault(dest, route.name)
    if not by_dest:
        status = "filtered" if problem is None else "rejected"
        return MessagePlan(
            claimed.id,
            status,
            patient_id_hashes=id_hashes,
            control_id=content.control_id,
            reason=problem or "",
        )
    return MessagePlan(
        claimed.id,
        "processed",
        routes=tuple(r.name for r in routes),
        deliveries=tuple(PlannedDelivery(d, route) for d, route in by_dest.items()),
        reason=problem or "",
        patient_key=cipher.hash_id(key.ordering_key),
        patient_id_hashes=id_hashes,
        control_id=content.control_id,
    )


def plan_all(
    config: Config, cipher: Cipher, claimed: Iterable[ClaimedMessage]
) -> list[MessagePlan]:
    plans = []
    for c in claimed:
        try:
            plans.append(plan_message(config, cipher, c))
        except StoreError as exc:
            log.error("message %d cannot be read: %s", c.id, exc)
            plans.append(MessagePlan(c.id, "rejected", reason=str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad message never stops the flow
            log.exception("message %d failed in the pipeline", c.id)
            plans.append(
                MessagePlan(c.id, "rejected", reason=f"pipeline error: {type(exc).__name__}")
            )
    return plans


class Pipeline:
    """Moves ``received`` messages to ``processed``/``filtered``/``rejected``."""

    def __init__(
        self,
        config: Config,
        store: Store,
        node_id: str,
        on_routed: Callable[[set[str]], None] = lambda _d: None,
    ) -> None:
        self._config = config
        self._store = store
        self._node = node_id
        self._on_routed = on_routed
        self.wake = asyncio.Event()
        self.processed = 0

    async def step(self) -> int:
        """Processes one batch; returns how many messages it took."""
        batch = self._config.engine.pipeline_batch
        lease = self._config.engine.lease
        claimed = await self._store.writer.run(
            lambda c: claim_messages(c, self._node, _utcnow(), lease, batch)
        )
        if not claimed:
            return 0
        plans = await run_blocking(plan_all, self._config, self._store.cipher, claimed)
        await self._store.writer.run(lambda c: apply_plans(c, plans, _utcnow()))
        self.processed += len(plans)
        dests = {d.destination for p in plans for d in p.deliveries}
        if dests:
            self._on_routed(dests)
        return len(claimed)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                n = await self.step()
            except StoreError as exc:
                log.error("pipeline: %s; retrying in 1 s", exc)
                n = 0
                await asyncio.sleep(1.0)
            if n == 0:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=0.5)
                except TimeoutError:
                    pass
