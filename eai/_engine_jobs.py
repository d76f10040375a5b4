"""The engine's periodic jobs on its APScheduler: the identity digest, the identity-server
retry, the technical alerts and the plugins' :class:`eai.registry.PeriodicSpec` jobs, each
run once across nodes (:meth:`eai._membership.Membership.once`); their new settings
after a reload; and the scheduler's stop, which lets the runs under way end.

Touches: nothing itself (the jobs touch what they do).
"""

from __future__ import annotations

import asyncio

from apscheduler.executors.base import run_coroutine_job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from eai._engine_ingest import JournalView
from eai._membership import Membership
from eai.alerts import Alerter
from eai.anomaly_mail import AnomalyMailer
from eai.config import Config
from eai.pipeline import Pipeline
from eai.registry import periodic_jobs

__all__ = ["reschedule_jobs", "schedule_alerts", "schedule_jobs", "stop_scheduler"]


def _every(scheduler: AsyncIOScheduler, job_id: str, func: object, seconds: float) -> None:
    scheduler.add_job(func, "interval", seconds=seconds, id=job_id, coalesce=True, max_instances=1)


def schedule_jobs(
    scheduler: AsyncIOScheduler,
    nodes: Membership,
    cfg: Config,
    mailer: AnomalyMailer,
    pipeline: Pipeline,
    alerter: Alerter,
    view: JournalView,
) -> None:
    """Adds every periodic job of ``cfg`` (before the scheduler starts)."""
    _every(
        scheduler,
        "identity-digest",
        nodes.once("identity-digest", mailer.digest),
        cfg.identity.digest_every,
    )
    if cfg.identity.server is not None:
        _every(
            scheduler,
            "identity-retry",
            nodes.once("identity-retry", pipeline.retry_unavailable),
            cfg.identity.server.retry_every,
        )
    schedule_alerts(scheduler, alerter)
    for job in periodic_jobs().values():
        scheduler.add_job(
            nodes.once(f"periodic:{job.name}", job.run),
            "interval",
            seconds=job.interval,
            args=[cfg, view],
            id=f"periodic:{job.name}",
            coalesce=True,
            max_instances=1,
        )


def schedule_alerts(scheduler: AsyncIOScheduler, alerter: Alerter) -> None:
    """The alerts job every ``alerts.every`` (when a rule is configured); its own lock
    makes it safe on several nodes."""
    if scheduler.get_job("alerts") is not None:
        scheduler.remove_job("alerts")
    if alerter.wanted():
        _every(scheduler, "alerts", alerter.run_once, alerter.every)


def reschedule_jobs(
    scheduler: AsyncIOScheduler | None,
    config: Config,
    alerter: Alerter | None,
    view: JournalView | None,
) -> None:
    """A reload's new intervals and config for the running jobs."""
    if scheduler is None or not scheduler.running:
        return
    scheduler.reschedule_job(
        "identity-digest", trigger="interval", seconds=config.identity.digest_every
    )
    if alerter is not None:
        schedule_alerts(scheduler, alerter)
    for job in periodic_jobs().values():
        if scheduler.get_job(f"periodic:{job.name}") is not None:
            scheduler.modify_job(f"periodic:{job.name}", args=[config, view])


async def stop_scheduler(scheduler: AsyncIOScheduler, grace: float) -> None:
    """Stops ``scheduler``: no new run starts, a run under way gets up to ``grace`` seconds
    to end. APScheduler's own shutdown cancels it: logged as an ERROR with the
    CancelledError's traceback, and a leader's job (PostgreSQL) spends much of its run
    in a thread taking its lock, where a cancel would also leave that connection open."""
    if not scheduler.running:
        return
    scheduler.pause()
    runs = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "cr_code", None) is run_coroutine_job.__code__
    ]
    if runs:
        await asyncio.wait(runs, timeout=grace)
    scheduler.shutdown(wait=False)
