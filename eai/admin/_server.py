"""The running engine's admin socket: serves audited reads of health data to local callers.

Touches: files (the socket and its directory's mode), DB (through the operations).

Each connection's peer is identified by the kernel (``SO_PEERCRED``); who may
connect at all is the socket file's mode (0600: the engine's user; 0660 with
``engine.admin_group``). A request is one length-prefixed JSON object
(:mod:`eai.admin._protocol`), ``{"op": "raw", "message_id": N, "reason": "..."}``;
the answer is ``{"ok": true, ...}`` or ``{"ok": false, "code": ..., "error": ...}``.

Besides the store's operations (:mod:`eai.admin._ops`), the engine hands in its own
``actions``, run on the event loop: ``reload`` (routes.yaml; an invalid file answers
``code: invalid_config`` with its ``issues``, FILE:LINE:COL each).
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from eai.admin._address import socket_address
from eai.admin._ops import OPERATIONS, BadRequest
from eai.admin._peer import Caller, caller_of
from eai.admin._protocol import (
    HEADER_SIZE,
    MAX_REQUEST,
    ProtocolError,
    decode,
    encode,
    frame_length,
)
from eai.errors import ConfigError, ConfigIssue, EaiError, NotFound, StoreError
from eai.net import run_blocking
from eai.store import Store

__all__ = ["Action", "AdminServer"]

log = logging.getLogger(__name__)

Action = Callable[[Caller, dict[str, Any]], Awaitable[dict[str, Any]]]
"""An engine operation on the admin socket: the caller, the request; the answer's fields."""


def _error(code: str, text: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": text}


def _issue_json(issue: ConfigIssue) -> dict[str, Any]:
    return {
        "file": issue.file,
        "line": issue.line,
        "column": issue.column,
        "message": issue.message,
    }


class AdminServer:
    """``await start()`` binds the socket; ``await stop()`` closes it and removes the file."""

    def __init__(
        self,
        path: Path,
        store: Store,
        *,
        group: str | None = None,
        max_clients: int = 8,
        timeout: float = 30.0,
        actions: Mapping[str, Action] | None = None,
    ) -> None:
        self.path = path.absolute()
        self._store = store
        self._actions = dict(actions or {})
        self._group = group
        self._max_clients = max_clients
        self._timeout = timeout
        self._clients = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        gid = self._group_id()
        self._prepare_directory(gid)
        self._remove_stale()
        try:
            with socket_address(self.path) as address:
                self._server = await asyncio.start_unix_server(self._serve, path=address)
        except OSError as exc:
            raise StoreError(
                f"cannot open the admin socket {self.path}: {exc.strerror or exc}; "
                "set engine.admin_socket"
            ) from exc
        # Until this chmod the socket has the umask's mode (no write bit for group or
        # others with the usual 022), and its directory is already closed to others.
        os.chmod(self.path, 0o660 if gid is not None else 0o600)
        if gid is not None:
            os.chown(self.path, -1, gid)
        log.info("admin socket listening on %s", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _group_id(self) -> int | None:
        if self._group is None:
            return None
        try:
            return grp.getgrnam(self._group).gr_gid
        except KeyError:
            raise StoreError(f"engine.admin_group: no group named {self._group!r}") from None

    def _prepare_directory(self, gid: int | None) -> None:
        """The socket's directory: 0700, or 0710 for ``admin_group`` (traverse, not list)."""
        parent = self.path.parent
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(parent)
        if st.st_uid != os.geteuid():
            return  # someone else's directory (/run/...): its owner decides its mode
        try:
            if gid is not None:
                os.chown(parent, -1, gid)
            os.chmod(parent, 0o710 if gid is not None else 0o700)
        except OSError as exc:
            raise StoreError(f"cannot set the mode of {parent}: {exc.strerror}") from exc

    def _remove_stale(self) -> None:
        """A socket file left by an engine killed before it could remove it; one that an
        engine still answers on is not taken from it."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise StoreError(f"{self.path} exists and is not a socket: not replacing it")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                with socket_address(self.path) as address:
                    probe.connect(address)
            except OSError:
                os.unlink(self.path)
                return
        raise StoreError(f"another engine answers on the admin socket {self.path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients += 1
        try:
            if self._clients > self._max_clients:
                writer.write(encode(_error("busy", "too many admin connections; try again")))
                await writer.drain()
                return
            caller = caller_of(writer.get_extra_info("socket"))
            while True:
                try:
                    header = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), self._timeout)
                    length = frame_length(header, MAX_REQUEST)
                    body = await asyncio.wait_for(reader.readexactly(length), self._timeout)
                    request = decode(body)
                except ProtocolError as exc:
                    writer.write(encode(_error("bad_request", str(exc))))
                    await writer.drain()
                    return
                answer = await self._answer(caller, request)
                writer.write(encode(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            return
        finally:
            self._clients -= 1
            writer.close()

    async def _answer(self, caller: Caller, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("op")
        operation = OPERATIONS.get(name) if isinstance(name, str) else None
        action = self._actions.get(name) if isinstance(name, str) else None
        if operation is None and action is None:
            known = ", ".join(sorted({*OPERATIONS, *self._actions}))
            return _error("unknown_op", f"unknown op {name!r}; known: {known}")
        try:
            if action is not None:
                result = await action(caller, request)
            else:
                assert operation is not None
                result = await run_blocking(operation, self._store, caller, request)
        except ConfigError as exc:
            log.warning("admin %s by uid %d refused: invalid config", name, caller.uid)
            answer = _error("invalid_config", str(exc))
            return {**answer, "issues": [_issue_json(i) for i in exc.issues]}
        except BadRequest as exc:
            return _error("bad_request", str(exc))
        except NotFound as exc:
            return _error("not_found", str(exc))
        except EaiError as exc:
            log.warning("admin %s by uid %d refused: %s", name, caller.uid, type(exc).__name__)
            return _error("refused", str(exc))
        except Exception:  # noqa: BLE001 - the caller gets an answer, the log the traceback
            log.exception("admin %s by uid %d failed", name, caller.uid)
            return _error("internal", "the engine could not answer; see its log")
        log.info("admin %s for uid %d (%s) answered", name, caller.uid, caller.user)
        return {"ok": True, **result}
