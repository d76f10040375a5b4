"""Logging across the engine's child processes (DICOM forwarding, planning workers,
listeners in processes of their own).

Touches: nothing (the logging module's state only).

A child starts with the engine's levels (:func:`levels`, passed at its start) and sends
its records back (:func:`forward`: each made picklable); the engine hands each to its
own logger (:func:`handle`), so its handlers, levels and filters (no patient data) apply
as to the engine's own records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

__all__ = ["forward", "handle", "levels"]


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


class _Forward(logging.Handler):
    """Hands each record, made picklable, to ``send``."""

    def __init__(self, send: Callable[[logging.LogRecord], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
            self._send(record)
        except Exception:  # noqa: BLE001 - logging never fails the child's work
            self.handleError(record)


def forward(send: Callable[[logging.LogRecord], None], levels: Mapping[str, int]) -> None:
    """In a child: its records go to ``send`` (message formatted, traceback as text) and
    nowhere else; its loggers take the engine's ``levels``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Forward(send))
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
