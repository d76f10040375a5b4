"""What the benchmarks that run a peer in a child process share: ``--pin`` (this process
on one CPU, the peer on the others) and the CPU and wall time of a measured stretch.

Touches: the scheduler's affinity of this process and of the peer (``/proc/PID/task``).

CPU time is this process's (:func:`time.process_time`), robust to the load of the
machine; wall time is not, so the load average is reported beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import TracebackType

__all__ = ["Spent", "add_pin_option", "pin"]


def add_pin_option(parser: argparse.ArgumentParser) -> None:
    """``--pin CPU`` (default: not pinned)."""
    parser.add_argument(
        "--pin",
        type=int,
        default=None,
        metavar="CPU",
        help="pin the engine (this process) to CPU and the peer to the other CPUs",
    )


def pin(cpu: int | None, peer: int) -> str:
    """Pin this process (the engine) to ``cpu`` and the peer process ``peer`` to the other
    CPUs, every thread of each (threads started later inherit it); "" when not asked."""
    if cpu is None:
        return ""
    mine = os.sched_getaffinity(0)
    others = (mine - {cpu}) or {cpu}
    for pid, cpus in ((peer, others), (os.getpid(), {cpu})):
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)
    return f"engine on CPU {cpu}, peer on {sorted(others)}"


class Spent:
    """``with Spent() as spent:`` measures the block: ``spent.cpu`` (this process's CPU
    seconds), ``spent.wall`` (seconds), ``spent.load`` (the higher 1-minute load average of
    its start and its end)."""

    cpu = wall = load = 0.0

    def __enter__(self) -> Spent:
        self._load0 = os.getloadavg()[0]
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0
        self.load = max(self._load0, os.getloadavg()[0])
