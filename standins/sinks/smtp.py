"""An SMTP sink for demos: accepts every mail on a local port and prints From, To, Subject.

Touches: network (binds a local port), stdout.

A small SMTP server (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS,
no authentication) on asyncio, on its own thread: enough for the engine's anomaly mails
(:mod:`identity.notify`, :mod:`smtplib`), so a demo needs no mail server and no
``aiosmtpd``. Each mail is parsed with :mod:`email` and printed as one line; with
``body``, its text follows.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Callable
from email.message import EmailMessage

__all__ = ["MAX_MAIL_BYTES", "SmtpSink", "describe"]

MAX_MAIL_BYTES = 10 * 1024 * 1024
"""By default, a larger mail is refused (552) and not printed."""

_IDLE = 300.0
"""Seconds a client may stay silent before the sink closes its connection (RFC 5321 4.5.3.2)."""


def describe(mail: EmailMessage, *, body: bool = False) -> str:
    """``mail From: a  To: b  Subject: s``, then the text parts with ``body``."""
    line = f"mail From: {mail['From']}  To: {mail['To']}  Subject: {mail['Subject']}"
    if not body:
        return line
    part = mail.get_body(preferencelist=("plain", "html"))
    text = part.get_content() if part is not None else ""
    return line + "\n" + "\n".join("  " + t for t in str(text).splitlines())


class SmtpSink:
    """``start()`` listens on 127.0.0.1 (``port`` 0: any free port) on a thread;
    ``out`` gets one text per mail accepted; ``mails`` keeps them."""

    def __init__(
        self,
        port: int = 0,
        *,
        body: bool = False,
        out: Callable[[str], None] = print,
        max_bytes: int = MAX_MAIL_BYTES,
    ) -> None:
        self.requested_port = port
        self.max_bytes = max_bytes
        self.port = 0
        self.body = body
        self.out = out
        self.mails: list[EmailMessage] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> int:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the SMTP sink did not start")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def _close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(_close)
        thread.join(10)
        self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> None:
            try:
                self._server = await asyncio.start_server(
                    self._session, "127.0.0.1", self.requested_port
                )
            except OSError as exc:
                self._error = exc
                self._ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                try:
                    await self._server.serve_forever()
                except asyncio.CancelledError:
                    pass

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(text: str) -> None:
            writer.write(text.encode("ascii") + b"\r\n")

        sender, rcpts = "", list[str]()
        try:
            reply("220 eai-sink ESMTP (demo sink: prints what it receives)")
            while True:
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), _IDLE)
                if not line:
                    return
                verb, _, arg = line.decode("latin-1").rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    reply(f"250-eai-sink\r\n250-8BITMIME\r\n250 SIZE {self.max_bytes}")
                elif verb == "HELO":
                    reply("250 eai-sink")
                elif verb == "MAIL":
                    sender, rcpts = arg, []
                    reply("250 OK")
                elif verb == "RCPT":
                    if not sender:
                        reply("503 MAIL first")
                    else:
                        rcpts.append(arg)
                        reply("250 OK")
                elif verb == "DATA":
                    if not rcpts:
                        reply("503 RCPT first")
                        continue
                    reply("354 end with <CRLF>.<CRLF>")
                    await writer.drain()
                    reply(self._accept(await self._data(reader, self.max_bytes)))
                    sender, rcpts = "", []
                elif verb == "RSET":
                    sender, rcpts = "", []
                    reply("250 OK")
                elif verb == "NOOP":
                    reply("250 OK")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    return
                else:
                    reply("502 not implemented by this sink")
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            return  # ValueError: a line over the reader's limit
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _data(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
        """The mail's bytes (dot-unstuffed), or None if they exceed ``max_bytes``."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = await asyncio.wait_for(reader.readline(), _IDLE)
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            if line in (b".\r\n", b".\n"):
                return None if size > max_bytes else b"".join(lines)
            size += len(line)
            if size <= max_bytes:
                lines.append(line[1:] if line.startswith(b".") else line)

    def _accept(self, data: bytes | None) -> str:
        if data is None:
            return "552 mail too large"
        mail = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        self.out(describe(mail, body=self.body))
        return "250 OK accepted"
