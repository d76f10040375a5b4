"""A real Dovecot IMAP server for the tests: config, state and Maildirs in a temporary directory.

Touches: files (dovecot.conf, passwd file, Maildirs, state in a directory of its own),
processes (``dovecot -F -c CONF`` in the foreground, as root), network (IMAP over implicit
TLS on 127.0.0.1, a free port).

TLS is required (``ssl = required``, imaps only, TLS >= 1.2) with a client certificate of
the test CA for IMAP (``ssl_verify_client_cert``, ``auth_ssl_require_client_cert`` in
``protocol imap``; SASL for Postfix takes the password alone), as an MSSanté
operator asks of an application mailbox; users and passwords in a ``passwd-file``; mail in
``maildir:<mail_root>/<user>``. ``mail_root`` may be a real Postfix's ``vmail`` directory
(:mod:`tests._postfix`): the DSNs Postfix delivers are then read over IMAP. Processes run
as ``dovecot`` / ``dovenull``; the mail as ``owner`` (the Maildirs' owner).
"""

from __future__ import annotations

import imaplib
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from standins.net import free_port
from tests._pki import Pki

__all__ = ["Dovecot", "dovecot"]

DOVECOT = "/usr/sbin/dovecot"


@dataclass
class Dovecot:
    directory: Path
    port: int
    pki: Pki
    mail_root: Path
    starttls: bool = False

    def client(self, user: str, password: str) -> imaplib.IMAP4:
        """A logged-in IMAP session (the test's own view of the mailbox)."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        ctx.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        imap: imaplib.IMAP4
        if self.starttls:
            imap = imaplib.IMAP4("localhost", self.port, timeout=10)
            imap.starttls(ctx)
        else:
            imap = imaplib.IMAP4_SSL("localhost", self.port, ssl_context=ctx, timeout=10)
        imap.login(user, password)
        return imap

    def append(self, user: str, password: str, data: bytes, folder: str = "INBOX") -> None:
        imap = self.client(user, password)
        try:
            typ, answer = imap.append(folder, None, None, data)
            assert typ == "OK", answer
        finally:
            imap.logout()

    def folder(self, user: str, password: str, folder: str) -> list[tuple[bytes, str]]:
        """The mails of ``folder`` (bytes, flags), oldest first; [] when it does not exist."""
        imap = self.client(user, password)
        try:
            typ, _ = imap.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            typ, data = imap.uid("SEARCH", "ALL")
            out: list[tuple[bytes, str]] = []
            for uid in (data[0] or b"").split():
                typ, parts = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                first = parts[0]
                assert isinstance(first, tuple), parts
                out.append((first[1], first[0].decode()))
            return out
        finally:
            imap.logout()

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _sasl(socket: Path | None) -> str:
    """Dovecot's auth service as Postfix's SASL (``smtpd_sasl_type = dovecot``)."""
    if socket is None:
        return ""
    return f"""\
service auth {{
  unix_listener {socket} {{
    mode = 0666
  }}
}}
"""


def _conf(
    directory: Path, port: int, pki: Pki, mail_root: Path, sasl: Path | None, starttls: bool
) -> str:
    return (
        _sasl(sasl)
        + f"""\
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{pki.server_cert}
ssl_key = <{pki.server_key}
ssl_ca = <{pki.ca}
ssl_min_protocol = TLSv1.2
ssl_verify_client_cert = yes
ssl_require_crl = no
auth_ssl_require_client_cert = no
protocol imap {{
  auth_ssl_require_client_cert = yes
}}
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{mail_root}/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {directory}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {directory}/passwd
}}
service imap-login {{
  inet_listener imap {{
    port = {port if starttls else 0}
  }}
  inet_listener imaps {{
    port = {0 if starttls else port}
    ssl = yes
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""
    )


@contextmanager
def dovecot(
    pki: Pki,
    users: dict[str, str],
    *,
    mail_root: Path | None = None,
    owner: str = "nobody",
    sasl_socket: Path | None = None,
    starttls: bool = False,
) -> Iterator[Dovecot]:
    """A running Dovecot serving ``users`` (address -> password), removed after.

    ``mail_root``: where the Maildirs are (default: in its own directory); ``owner``: the
    system user owning them (``postfix`` for a Postfix's ``vmail``); ``sasl_socket``: where
    its auth service listens for a Postfix's SASL (the same users and passwords);
    ``starttls``: IMAP on the port with STARTTLS (required before LOGIN), not imaps."""
    account = pwd.getpwnam(owner)
    directory = Path(tempfile.mkdtemp(prefix="eai-dovecot-", dir="/tmp"))
    directory.chmod(0o755)
    root = mail_root or directory / "mail"
    root.mkdir(exist_ok=True)
    shutil.chown(root, account.pw_uid, account.pw_gid)
    (directory / "passwd").write_text(
        "".join(
            f"{user}:{{PLAIN}}{password}:{account.pw_uid}:{account.pw_gid}::{root}/{user}\n"
            for user, password in users.items()
        )
    )
    port = free_port()
    conf = directory / "dovecot.conf"
    conf.write_text(_conf(directory, port, pki, root, sasl_socket, starttls))
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = Dovecot(directory, port, pki, root, starttls)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"dovecot did not start:\n{_output(process)}"
            try:
                server.client(*next(iter(users.items()))).logout()
                break
            except OSError:
                assert time.monotonic() < deadline, "dovecot did not start:\n" + server.log()
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(directory, ignore_errors=True)


def _output(process: subprocess.Popen[bytes]) -> str:
    if process.stdout is None:
        return ""
    return process.stdout.read().decode(errors="replace")[-3000:]
