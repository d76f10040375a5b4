"""The SMTP submission client of the ``mssante`` destination (blocking; run off the loop).

Touches: network (SMTP with STARTTLS or implicit TLS to the operator's server), nothing else.

smtplib with the destination's TLS context (TLS >= 1.2, the application mailbox's client
certificate, the server checked against ``tls.ca`` and ``tls.server_hostname``): STARTTLS
is required when ``security`` is ``starttls`` (never a mail in clear), AUTH when a user is
configured. Idle connections are kept (at most ``connections``) and checked with NOOP
before reuse. One :meth:`SmtpClient.submit` is one SMTP transaction, with every RCPT
answered before DATA:

- any RCPT answered 4xx: RSET, nobody gets the mail, :class:`TransientDeliveryError`
  (the whole mail is retried later, so no recipient gets it twice);
- RCPT answered 5xx: that recipient is refused (code and text kept), the others get it;
- every RCPT 5xx, or MAIL/DATA 5xx: :class:`PermanentDeliveryError`;
- refused connection, TLS failure, timeout, 4xx to MAIL/DATA, a lost connection, AUTH
  refused or required (RFC 4954 530/534/535/538: the config is to fix, the mails wait):
  :class:`TransientDeliveryError`.

DSN (RFC 3461), when the server offers it: ``ENVID`` (the delivery's, for correlation) and
``RET=HDRS`` on MAIL, ``ORCPT`` on each RCPT, and ``NOTIFY=SUCCESS,FAILURE,DELAY`` when a
delivery receipt is asked. Addresses are not logged (a patient's is its INS).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass

from connectors.mssante.config import MssanteDestinationConfig
from eai.errors import PermanentDeliveryError, TransientDeliveryError

__all__ = ["Refusal", "SmtpClient", "Submission"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A recipient the server refused for good (5xx to RCPT)."""

    address: str
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class Submission:
    """What the server took."""

    accepted: tuple[str, ...]
    refused: tuple[Refusal, ...]
    dsn: bool
    """The server offers DSN: the receipt request and ENVID went with the mail."""


class _ImplicitTls(smtplib.SMTP_SSL):
    """SMTP over TLS from the first byte, checking ``server_hostname`` (not the address)."""

    def __init__(
        self, server_hostname: str | None, context: ssl.SSLContext, timeout: float
    ) -> None:
        self._server_hostname = server_hostname
        super().__init__(context=context, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._server_hostname or host)


def _text(reply: bytes | str) -> str:
    raw = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(raw.split())[:300]


_AUTH_CODES = frozenset({530, 534, 535, 538})
"""RFC 4954 answers meaning "authenticate first / again": the config is to fix, not the mail."""


def _fail(stage: str, code: int, reply: bytes | str) -> Exception:
    text = f"MSSanté SMTP {stage}: {code} {_text(reply)}"
    if code in _AUTH_CODES:
        return TransientDeliveryError(text + " (check the destination's user and password)")
    if 400 <= code < 500 or code < 200:
        return TransientDeliveryError(text)
    return PermanentDeliveryError(text)


class SmtpClient:
    """Submits mails to one SMTP server; thread-safe (each submit holds its connection)."""

    def __init__(self, config: MssanteDestinationConfig, context: ssl.SSLContext) -> None:
        self.config = config
        self._context = context
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        name = cfg.tls.server_hostname
        smtp: smtplib.SMTP
        if cfg.security == "tls":
            smtp = _ImplicitTls(name, context=self._context, timeout=cfg.connect_timeout)
            smtp.connect(cfg.host, cfg.port)
            smtp.ehlo()
        else:
            smtp = smtplib.SMTP(timeout=cfg.connect_timeout)
            smtp.connect(cfg.host, cfg.port)
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise TransientDeliveryError(
                    "MSSanté SMTP: the server offers no STARTTLS (a mail is never sent in clear)"
                )
            # the name STARTTLS checks: smtplib reads the private _host set by connect()
            setattr(smtp, "_host", name or cfg.host)  # noqa: B010
            smtp.starttls(context=self._context)
            smtp.ehlo()
        if cfg.user and cfg.password is not None:
            try:
                smtp.login(cfg.user, cfg.password.get_secret_value())
            except smtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise TransientDeliveryError(
                    f"MSSanté SMTP: authentication refused ({exc.smtp_code}): check user and "
                    "password"
                ) from exc
        if smtp.sock is not None:
            smtp.sock.settimeout(cfg.response_timeout)
        return smtp

    def _take(self) -> smtplib.SMTP:
        while True:
            with self._lock:
                smtp = self._idle.pop() if self._idle else None
            if smtp is None:
                return self._connect()
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except (smtplib.SMTPException, OSError):
                pass
            smtp.close()

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < self.config.connections:
                self._idle.append(smtp)
                return
        _quit(smtp)

    def submit(
        self, mail_from: str, recipients: tuple[str, ...], data: bytes, envid: str, notify: bool
    ) -> Submission:
        """One SMTP transaction (see the module docstring for what it raises)."""
        try:
            smtp = self._take()
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(f"MSSanté SMTP: cannot connect: {_reason(exc)}") from exc
        try:
            result = self._transaction(smtp, mail_from, recipients, data, envid, notify)
        except (TransientDeliveryError, PermanentDeliveryError):
            _quit(smtp)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise TransientDeliveryError(f"MSSanté SMTP: {_reason(exc)}") from exc
        self._give_back(smtp)
        return result

    def _transaction(
        self,
        smtp: smtplib.SMTP,
        mail_from: str,
        recipients: tuple[str, ...],
        data: bytes,
        envid: str,
        notify: bool,
    ) -> Submission:
        dsn = smtp.has_extn("dsn")
        code, reply = smtp.mail(mail_from, ["RET=HDRS", f"ENVID={envid}"] if dsn else [])
        if code != 250:
            raise _fail("MAIL FROM", code, reply)
        accepted: list[str] = []
        refused: list[Refusal] = []
        delayed: list[tuple[int, str]] = []
        for address in recipients:
            options = [f"ORCPT=rfc822;{address}"] if dsn else []
            if dsn and notify:
                options.insert(0, "NOTIFY=SUCCESS,FAILURE,DELAY")
            code, reply = smtp.rcpt(address, options)
            if code in (250, 251):
                accepted.append(address)
            elif code >= 500:
                refused.append(Refusal(address, code, _text(reply)))
            else:
                delayed.append((code, _text(reply)))
        if delayed or not accepted:
            smtp.rset()
            if delayed:
                code, text = delayed[0]
                raise TransientDeliveryError(
                    f"MSSanté SMTP RCPT: {code} {text} ({len(delayed)} of {len(recipients)} "
                    "recipient(s) deferred; the mail went to nobody and is retried)"
                )
            return Submission((), tuple(refused), dsn)
        try:
            code, reply = _data(smtp, data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
            raise _fail("DATA", exc.smtp_code, exc.smtp_error) from exc
        if code != 250:
            raise _fail("DATA", code, reply)
        return Submission(tuple(accepted), tuple(refused), dsn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            _quit(smtp)


def _data(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """``smtp.data(data)`` for bytes, as smtplib does it (RFC 5321 §4.5.2: a line that
    starts with a period gets another, CRLF ``.`` CRLF ends the data), with the dot-stuffing
    done by ``bytes.replace``: smtplib's multiline regular expression took 0.4 ms of CPU
    for a 85 kB mail, a tenth of a document's."""
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    quoted = data.replace(b"\n.", b"\n..")
    if quoted.startswith(b"."):
        quoted = b"." + quoted
    smtp.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
    return smtp.getreply()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure: {exc.reason or exc}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
