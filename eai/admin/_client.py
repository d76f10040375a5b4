"""The CLI's side of the admin socket: one request to the running engine, one answer.

Touches: network (a local Unix socket).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from eai.admin._address import socket_address
from eai.admin._protocol import HEADER_SIZE, MAX_ANSWER, ProtocolError, decode, encode, frame_length
from eai.errors import ConfigError, ConfigIssue, EaiError, NotFound, Unavailable

__all__ = ["AdminRefused", "EngineNotRunning", "request"]

BREAK_GLASS = "eai messages show ID --raw --break-glass"


class EngineNotRunning(Unavailable):
    """No engine answers on the admin socket: raw access needs it (exit 4)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"raw access to health data needs the running engine, which records who reads "
            f"it, and none answers on {path} ({why}); start it (eai run), or use the "
            f"break-glass path, root only and itself recorded: {BREAK_GLASS}"
        )


class AdminRefused(EaiError):
    """The engine answered with an error, or the socket refused this user."""


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise AdminRefused("the engine closed the admin connection before answering")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _issues(raw: Any, text: str) -> list[ConfigIssue]:
    """The FILE:LINE:COL issues of an ``invalid_config`` answer."""
    try:
        return [
            ConfigIssue(str(i["file"]), int(i["line"]), int(i["column"]), str(i["message"]))
            for i in raw
        ]
    except (TypeError, KeyError, ValueError):
        return [ConfigIssue("routes.yaml", 1, 1, text)]


def request(path: Path, obj: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Sends ``obj`` and returns the answer's fields; an error answer raises
    :class:`eai.errors.NotFound` or :class:`AdminRefused`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with socket_address(path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise EngineNotRunning(path, exc.strerror or type(exc).__name__) from exc
        except PermissionError as exc:
            raise AdminRefused(
                f"{path}: permission denied; the admin socket is open to the engine's user "
                "and to the members of engine.admin_group"
            ) from exc
        try:
            sock.sendall(encode(obj))
            answer = decode(_receive(sock, frame_length(_receive(sock, HEADER_SIZE), MAX_ANSWER)))
        except (OSError, ProtocolError) as exc:
            raise AdminRefused(f"admin socket {path}: {exc}") from exc
    if answer.get("ok") is True:
        return answer
    text = str(answer.get("error", "the engine refused the request"))
    if answer.get("code") == "not_found":
        raise NotFound(text)
    if answer.get("code") == "invalid_config":
        raise ConfigError(_issues(answer.get("issues"), text))
    raise AdminRefused(f"the engine refused: {text}")
