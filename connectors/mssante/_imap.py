"""The IMAP client of the MSSanté receipts reader (blocking; run off the loop).

Touches: network (IMAP over implicit TLS or STARTTLS to the operator's server), nothing else.

imaplib with the reader's TLS context (TLS >= 1.2, the application mailbox's client
certificate, the server checked against ``tls.ca`` and ``tls.server_hostname``); with
``starttls`` the session is upgraded before LOGIN (never a password in clear). What it does
to the mailbox, and only that:

- lists the mails of the watched folder by UID (``UID SEARCH ALL``) and reads one with
  ``BODY.PEEK[]``: reading never marks a mail ``\\Seen``;
- moves a mail, after its receipt is journaled, to the processed or quarantine folder
  (``UID MOVE``, RFC 6851; without it ``UID COPY`` then ``\\Deleted`` and ``UID EXPUNGE``
  of that UID only, RFC 4315), first setting the keywords given (the quarantine reason);
- creates those folders when missing. It never deletes a mail anywhere else.

Errors are :class:`ImapError` (the reader retries at its next poll).
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Sequence
from typing import Any

__all__ = ["ImapError", "ImapMailbox"]


class ImapError(Exception):
    """The server refused, answered out of turn, or could not be reached (no patient data)."""


class _ImplicitTls(imaplib.IMAP4_SSL):
    """IMAP over TLS from the first byte, checking ``server_hostname`` (not the address)."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float,
    ) -> None:
        self._server_hostname = server_hostname or host
        super().__init__(host, port, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout)
        context: ssl.SSLContext = self.ssl_context
        return context.wrap_socket(sock, server_hostname=self._server_hostname)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(answer: tuple[str, Any], what: str) -> list[Any]:
    typ, data = answer
    if typ != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise ImapError(f"IMAP {what}: {typ} {text[:200]}")
    return list(data)


class ImapMailbox:
    """One IMAP session on the application mailbox (not thread-safe: one reader)."""

    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        context: ssl.SSLContext,
        server_hostname: str | None,
        user: str,
        password: str,
        timeout: float,
    ) -> None:
        self._args = (host, port, security, context, server_hostname, timeout)
        self._user = user
        self._password = password
        self._imap: imaplib.IMAP4 | None = None
        self._move = False

    def open(self, folder: str, create: Sequence[str]) -> None:
        """Connects, logs in, creates the ``create`` folders when missing, selects
        ``folder`` read-write."""
        host, port, security, context, name, timeout = self._args
        try:
            imap: imaplib.IMAP4
            if security == "tls":
                imap = _ImplicitTls(host, port, context, name, timeout)
            else:
                imap = imaplib.IMAP4(host, port, timeout=timeout)
                if "STARTTLS" not in imap.capabilities:
                    imap.shutdown()
                    raise ImapError("the server offers no STARTTLS (no login in clear)")
                imap.host = name or host  # the name starttls() checks in the certificate
                imap.starttls(context)
            self._imap = imap
            _check(imap.login(self._user, self._password), "LOGIN")
            caps = _check(imap.capability(), "CAPABILITY")
            self._move = b"MOVE" in b" ".join(c for c in caps if isinstance(c, bytes)).split()
            for name_ in create:
                typ, data = imap.create(_quote(name_))
                if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(
                    d for d in data if isinstance(d, bytes)
                ):
                    _check(imap.list("", _quote(name_)), f"CREATE {name_!r}")
            _check(imap.select(_quote(folder)), f"SELECT {folder!r}")
        except ImapError:
            self.close()
            raise
        except (imaplib.IMAP4.error, OSError, ssl.SSLError) as exc:
            self.close()
            raise ImapError(f"IMAP: cannot open the mailbox: {_reason(exc)}") from exc

    def _session(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise ImapError("IMAP: the mailbox is not open")
        return self._imap

    def uids(self, limit: int) -> list[int]:
        """The UIDs of the selected folder's mails, oldest first (at most ``limit``)."""
        try:
            data = _check(self._session().uid("SEARCH", "ALL"), "SEARCH")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"IMAP SEARCH: {_reason(exc)}") from exc
        found = (data[0] or b"").split() if data else []
        return sorted(int(u) for u in found if u.isdigit())[:limit]

    def size(self, uid: int) -> int:
        """The size of mail ``uid`` (``RFC822.SIZE``); -1 when it is gone."""
        try:
            data = _check(self._session().uid("FETCH", str(uid), "(RFC822.SIZE)"), "FETCH")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"IMAP FETCH: {_reason(exc)}") from exc
        for item in data:
            text = item if isinstance(item, bytes) else b""
            found = re.search(rb"RFC822\.SIZE (\d+)", text)
            if found:
                return int(found.group(1))
        return -1

    def fetch(self, uid: int) -> bytes | None:
        """Mail ``uid`` as stored (``BODY.PEEK[]``: not marked seen); None when it is gone."""
        try:
            data = _check(self._session().uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"IMAP FETCH: {_reason(exc)}") from exc
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def move(self, uid: int, folder: str, keywords: Sequence[str] = ()) -> None:
        """Moves mail ``uid`` to ``folder``, with ``keywords`` set first."""
        imap = self._session()
        key = str(uid)
        try:
            if keywords:
                _check(imap.uid("STORE", key, "+FLAGS", f"({' '.join(keywords)})"), "STORE")
            if self._move:
                _check(imap.uid("MOVE", key, _quote(folder)), "MOVE")
                return
            _check(imap.uid("COPY", key, _quote(folder)), "COPY")
            _check(imap.uid("STORE", key, "+FLAGS", "(\\Deleted)"), "STORE")
            _check(imap.uid("EXPUNGE", key), "UID EXPUNGE")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"IMAP move to {folder!r}: {_reason(exc)}") from exc

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            try:
                imap.shutdown()
            except OSError:
                pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure: {exc.reason or exc}"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}"
