"""``eai sink mllp|smtp``: run a demo sink in the foreground until Ctrl-C or SIGTERM.

Touches: network (through the sinks), stdout.

Declared in :data:`eai.plugins.COMMANDS` (name ``sink``), so ``eai --help`` lists it
without importing this module. Each sink first prints ``listening on 127.0.0.1:PORT``
(``--port 0``: a free port), then one line per message or mail, flushed at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import click

from standins.sinks.mllp import MllpSink
from standins.sinks.smtp import SmtpSink

__all__ = ["sink"]


def _echo(text: str) -> None:
    click.echo(text)  # click.echo flushes stdout after each call


def _serve(start: Callable[[], int], stop: Callable[[], None], name: str) -> None:
    """Starts the sink, prints where it listens, waits for SIGINT or SIGTERM, stops it."""
    try:
        port = start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"{name} sink: cannot listen: {exc}") from exc
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    _echo(f"{name} sink listening on 127.0.0.1:{port} (Ctrl-C to stop)")
    while not done.wait(0.5):
        pass
    stop()


@click.group()
def sink() -> None:
    """Demo sinks: local peers that accept what the engine sends and print it."""


@sink.command("mllp")
@click.option("--port", type=click.IntRange(0, 65535), default=2576, show_default=True)
@click.option("--show", is_flag=True, help="print each message too (it may hold patient data)")
def mllp_cmd(port: int, show: bool) -> None:
    """An MLLP receiver on 127.0.0.1:PORT: answers AA, prints MSH-9, MSH-10, size."""
    s = MllpSink(port, show=show, out=_echo)
    _serve(s.start, s.stop, "MLLP")


@sink.command("smtp")
@click.option("--port", type=click.IntRange(0, 65535), default=2525, show_default=True)
@click.option("--body", is_flag=True, help="print each mail's text too")
def smtp_cmd(port: int, body: bool) -> None:
    """An SMTP server on 127.0.0.1:PORT: accepts every mail, prints From, To, Subject."""
    s = SmtpSink(port, body=body, out=_echo)
    _serve(s.start, s.stop, "SMTP")
