"""eai.xml.parse_xml: XXE, entity expansion, external DTDs and XInclude are refused."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eai.errors import InputError
from eai.xml import parse_xml
from tests._paths import CDA

CDA_FILES = sorted(CDA.glob("*.xml"))
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


def test_cda_fixtures_exist() -> None:
    assert len(CDA_FILES) >= 6


@pytest.mark.parametrize("path", CDA_FILES, ids=lambda p: p.name)
def test_every_cda_fixture_parses(path: Path) -> None:
    root = parse_xml(path.read_bytes())
    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"


def test_billion_laughs_refused_at_once() -> None:
    decls = "".join(
        f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">{decls}]><lolz>&lol9;</lolz>'
    started = time.monotonic()
    reason = _refused(data.encode())
    assert time.monotonic() - started < 1.0
    assert "entity" in reason.lower()


def test_small_entity_expansion_refused_too() -> None:
    data = b'<!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;">]><a>&y;</a>'
    assert "declares entities" in _refused(data)


def test_quadratic_blowup_refused() -> None:
    data = b'<!DOCTYPE q [<!ENTITY a "' + b"a" * 100_000 + b'">]><q>' + b"&a;" * 10_000 + b"</q>"
    assert "entity" in _refused(data).lower()


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


def test_undeclared_entity_refused() -> None:
    assert "entity" in _refused(b"<d>&nope;</d>").lower()


def test_utf16_xxe_refused(secret_file: Path) -> None:
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        f'<!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret_file}">]><d>&x;</d>'
    )
    assert "declares entities" in _refused(text.encode("utf-16"))


def test_element_declarations_refused() -> None:
    assert "DTD" in _refused(b"<!DOCTYPE d [<!ELEMENT d ANY>]><d/>")


def test_bare_doctype_is_harmless_and_accepted() -> None:
    assert parse_xml(b"<!DOCTYPE d><d>x</d>").text == "x"


def test_malformed_xml_gives_reason_and_line() -> None:
    reason = _refused(b"<a>\n<b>\n</a>")
    assert reason.startswith("XML is not well-formed")
    assert "(line 3)" in reason


@pytest.mark.parametrize("data", [b"", b"   \n", b"not xml at all"])
def test_empty_or_text_refused(data: bytes) -> None:
    _refused(data)


def test_excessive_depth_refused() -> None:
    assert "nested" in _refused(b"<a>" * 300 + b"</a>" * 300)


def test_parser_is_safe_across_threads() -> None:
    payloads = [p.read_bytes() for p in CDA_FILES]
    with ThreadPoolExecutor(4) as pool:
        tags = list(pool.map(lambda d: parse_xml(d).tag, payloads * 4))
    assert set(tags) == {"{urn:hl7-org:v3}ClinicalDocument"}
