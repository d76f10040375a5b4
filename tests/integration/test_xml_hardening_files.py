"""eai.xml.parse_xml refuses XXE, external DTDs and XInclude aimed at real files and servers.

Touches: files (a secret in tmp_path) and network (a listening socket that must see no
connection).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from eai.errors import InputError
from eai.xml import parse_xml

CANARY = "CANARY-3f1c9a-secret-content"


def _refused(data: bytes) -> str:
    with pytest.raises(InputError) as info:
        parse_xml(data)
    return info.value.reason


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(CANARY)
    return path


@pytest.fixture
def trap_server() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1: any fetch attempt would show as a pending connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def _no_connection(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def test_xxe_file_refused(secret_file: Path) -> None:
    data = (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret_file}">]>'
        "<d>&xxe;</d>"
    ).encode()
    reason = _refused(data)
    assert "entit" in reason
    assert CANARY not in reason


def test_xxe_http_refused_without_any_connection(trap_server: socket.socket) -> None:
    port = trap_server.getsockname()[1]
    data = (f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]><d>&xxe;</d>').encode()
    assert "entit" in _refused(data)
    assert _no_connection(trap_server)


def test_parameter_entity_xxe_refused(secret_file: Path, trap_server: socket.socket) -> None:
    port = trap_server.getsockname()[1]
    data = (
        f'<!DOCTYPE d [<!ENTITY % p SYSTEM "file://{secret_file}">'
        f'<!ENTITY % h SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %p; %h;]><d/>'
    ).encode()
    reason = _refused(data)
    assert CANARY not in reason
    assert _no_connection(trap_server)


@pytest.mark.parametrize("kind", ["SYSTEM file", "SYSTEM http", "PUBLIC http"])
def test_external_dtd_refused(kind: str, secret_file: Path, trap_server: socket.socket) -> None:
    port = trap_server.getsockname()[1]
    external = {
        "SYSTEM file": f'SYSTEM "file://{secret_file}"',
        "SYSTEM http": f'SYSTEM "http://127.0.0.1:{port}/cda.dtd"',
        "PUBLIC http": f'PUBLIC "-//EVIL//DTD x//EN" "http://127.0.0.1:{port}/cda.dtd"',
    }[kind]
    reason = _refused(f"<!DOCTYPE d {external}><d/>".encode())
    assert "external" in reason
    assert CANARY not in reason
    assert _no_connection(trap_server)


def test_xinclude_refused(secret_file: Path) -> None:
    data = (
        '<d xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<xi:include href="file://{secret_file}" parse="text"/></d>'
    ).encode()
    reason = _refused(data)
    assert "XInclude" in reason and "line 1" in reason


def test_utf16_xxe_refused(secret_file: Path) -> None:
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        f'<!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret_file}">]><d>&x;</d>'
    )
    assert "declares entities" in _refused(text.encode("utf-16"))
