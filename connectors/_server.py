"""What every stream listener does the same way: finishing its connections on stop.

Touches: nothing itself (waits on and cancels the listener's own tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

__all__ = ["finish_connections"]

log = logging.getLogger(__name__)


async def finish_connections(
    tasks: Collection[asyncio.Task[None]], grace: float, listener: str, what: str
) -> None:
    """Lets ``tasks`` finish within ``grace`` seconds, then cancels the rest.

    ``what`` names them in the warning ("request(s)", "connection(s)").
    """
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        log.warning(
            "listener %s: %d %s still busy after %g s, closed", listener, len(pending), what, grace
        )
        await asyncio.wait(pending)
