"""A real Postfix for the tests: its own config, queue and mailboxes in a temporary directory.

Touches: files (main.cf, master.cf, queue, Maildirs in a directory of its own), processes
(``postfix -c DIR start`` / ``stop``, as root), network (smtpd on 127.0.0.1, a free port).

smtpd requires STARTTLS (``smtpd_tls_security_level = encrypt``) and a client certificate
of the test CA (``smtpd_tls_req_ccert``), TLS >= 1.2; the domains of ``mailboxes`` are
virtual mailbox domains delivered to Maildirs (``mailbox(address)``). An address of those
domains without a mailbox is accepted at RCPT (``smtpd_reject_unlisted_recipient = no``)
and bounced by virtual(8): Postfix then sends a real DSN (RFC 3464) to the envelope
sender. ``postfix start-fg`` runs the master in the foreground, its log (``maillog_file =
/dev/stdout``) in ``DIR/maillog``.
"""

from __future__ import annotations

import email
import email.policy
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from standins.net import free_port
from tests._pki import Pki

__all__ = ["Postfix", "postfix"]

POSTFIX = "/usr/sbin/postfix"

_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n  -  n  60    1  pickup
cleanup   unix  n  -  n  -     0  cleanup
qmgr      unix  n  -  n  300   1  qmgr
tlsmgr    unix  -  -  n  1000? 1  tlsmgr
rewrite   unix  -  -  n  -     -  trivial-rewrite
bounce    unix  -  -  n  -     0  bounce
defer     unix  -  -  n  -     0  bounce
trace     unix  -  -  n  -     0  bounce
verify    unix  -  -  n  -     1  verify
flush     unix  n  -  n  1000? 0  flush
proxymap  unix  -  -  n  -     -  proxymap
smtp      unix  -  -  n  -     -  smtp
showq     unix  n  -  n  -     -  showq
error     unix  -  -  n  -     -  error
retry     unix  -  -  n  -     -  error
discard   unix  -  -  n  -     -  discard
virtual   unix  -  n  n  -     -  virtual
anvil     unix  -  -  n  -     1  anvil
scache    unix  -  -  n  -     1  scache
postlog   unix-dgram n - n -   1  postlogd
"""


@dataclass
class Postfix:
    directory: Path
    port: int

    def mailbox(self, address: str) -> list[EmailMessage]:
        """The mails delivered to ``address``'s Maildir (``new/``), oldest first."""
        new = self.directory / "vmail" / address / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.is_dir() else []
        out = []
        for path in files:
            mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(mail, EmailMessage)
            out.append(mail)
        return out

    def wait_mailbox(self, address: str, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.mailbox(address)
            if len(mails) >= count:
                return mails
            time.sleep(0.1)
        log = (self.directory / "maillog").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{address}: {len(self.mailbox(address))} mail(s), not {count}\n{log}")


def _main_cf(directory: Path, pki: Pki, domains: set[str], owner: pwd.struct_passwd) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
mail_owner = postfix
myhostname = mx.mss.test
mydomain = mss.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtputf8_enable = no
maillog_file = /dev/stdout
virtual_mailbox_domains = {", ".join(sorted(domains))}
virtual_mailbox_base = {directory}/vmail
virtual_mailbox_maps = texthash:{directory}/vmailbox
virtual_uid_maps = static:{owner.pw_uid}
virtual_gid_maps = static:{owner.pw_gid}
smtpd_reject_unlisted_recipient = no
smtpd_tls_cert_file = {pki.server_cert}
smtpd_tls_key_file = {pki.server_key}
smtpd_tls_CAfile = {pki.ca}
smtpd_tls_security_level = encrypt
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_ask_ccert = yes
smtpd_tls_req_ccert = yes
smtpd_tls_loglevel = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""


@contextmanager
def postfix(pki: Pki, mailboxes: list[str], extra: str = "") -> Iterator[Postfix]:
    """A running Postfix delivering ``mailboxes`` (addresses) to Maildirs in a directory of
    its own (under /tmp, not pytest's: the postfix user must reach it), removed after.
    ``extra``: main.cf lines added (e.g. SASL through a Dovecot auth socket)."""
    owner = pwd.getpwnam("postfix")
    directory = Path(tempfile.mkdtemp(prefix="eai-postfix-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        with _running(directory, pki, mailboxes, owner, extra) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _running(
    directory: Path, pki: Pki, mailboxes: list[str], owner: pwd.struct_passwd, extra: str = ""
) -> Iterator[Postfix]:
    for name in ("queue", "data", "vmail"):
        (directory / name).mkdir(exist_ok=True)
    shutil.chown(directory / "data", owner.pw_uid, owner.pw_gid)
    shutil.chown(directory / "vmail", owner.pw_uid, owner.pw_gid)
    port = free_port()
    domains = {a.rpartition("@")[2] for a in mailboxes}
    (directory / "main.cf").write_text(_main_cf(directory, pki, domains, owner) + extra)
    (directory / "master.cf").write_text(_MASTER.format(port=port))
    (directory / "vmailbox").write_text("".join(f"{a} {a}/\n" for a in mailboxes))
    command = [POSTFIX, "-c", str(directory)]
    with (directory / "maillog").open("wb") as log:
        # start-fg: master in the foreground, its log (maillog_file) on our file
        process = subprocess.Popen([*command, "start-fg"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "daemon started" not in _log(directory):
            assert process.poll() is None, "postfix did not start:\n" + _log(directory)
            assert time.monotonic() < deadline, "postfix did not start:\n" + _log(directory)
            time.sleep(0.1)
        yield Postfix(directory, port)
    finally:
        subprocess.run([*command, "stop"], capture_output=True, timeout=60)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _log(directory: Path) -> str:
    path = directory / "maillog"
    return path.read_text(errors="replace") if path.exists() else ""
