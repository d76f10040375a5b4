"""Logging across the engine's child processes (DICOM forwarding, planning workers).

Touches: nothing (the logging module's state only).

A child starts with the engine's levels (:func:`levels`, passed at its start) and sends
its records back; the engine hands each to its own logger (:func:`handle`), so its
handlers, levels and filters (no patient data) apply as to the engine's own records.
"""

from __future__ import annotations

import logging

__all__ = ["handle", "levels"]


def levels() -> dict[str, int]:
    """The levels set in this process's logging ("": the root), for a child's loggers."""
    out = {"": logging.getLogger().level}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            out[name] = logger.level
    return out


def handle(record: logging.LogRecord) -> None:
    """A child's record, through the logger it was made by (if that level is enabled)."""
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)
