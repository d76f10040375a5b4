"""Demotes APScheduler's routine INFO lines (job run, job done, job added) to DEBUG.

Touches: nothing (filters on APScheduler's loggers).

Every periodic job (identity digest and retry, DICOM retention) would otherwise log two
INFO lines per run: an operator filtering on INFO sees only what happened. The lines are
still there with ``--log-level DEBUG``. APScheduler's warnings and errors (a missed or
failing job) keep their level.
"""

from __future__ import annotations

import logging

__all__ = ["SCHEDULER_LOGGERS", "quiet_scheduler_logs"]

SCHEDULER_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")


class _InfoToDebug(logging.Filter):
    """An INFO record becomes DEBUG, and is dropped unless its logger shows DEBUG
    (its handlers would not check the level again)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILTER = _InfoToDebug()


def quiet_scheduler_logs() -> None:
    """Installs the demotion on APScheduler's loggers (once; calling again is harmless)."""
    for name in SCHEDULER_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
