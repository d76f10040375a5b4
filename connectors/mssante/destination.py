"""The ``mssante`` destination: one CI-SIS document mailed per delivery, to whom the matrix allows.

Touches: network (SMTP over TLS to the MSSanté operator), files (the TLS certificate and
key, read when the destination is built).

One send: the flags read through the routing matrix (:mod:`._matrix`: a combination it does
not list is refused, the rule named), the item read (:mod:`._source`), the XDM zip
(:mod:`._xdm`, metadata from :mod:`eai.xds`), one mail per recipient set (:mod:`._mail`),
each submitted (:mod:`._smtp`) off the event loop (:func:`eai.net.run_blocking`).

One outbox delivery is one document and its recipient sets (the professionals' mail, the
patient's mail). Outcome per recipient: a 5xx refusal of one recipient is kept in the
delivery's detail (code and text; the patient's mailbox named as such, never by its INS)
while the others get the mail; if no recipient at all takes it, the delivery is dead with
every refusal. A transient failure retries the delivery; a part already accepted (or
refused for good) in an earlier attempt is not sent again: the failed attempt's detail,
journaled with its outcome, ends with one ``[mss-sent {...}]`` marker per part done
(:mod:`._progress`: its Message-ID, which recipients took it, by rank, and the refusals;
no address of the patient), and the retry reads it back through the engine's
:data:`eai.registry.AttemptsReader`, after a restart or on another node too. Only the
attempt in flight when the engine dies is unrecorded: its mails may go again (at least
once). The detail names each mail's ``Message-ID`` and the DSN
``ENVID`` (``eai-<delivery id>``), which the receipts reader correlates.

Business acknowledgements (IG ``ack-metier-zam.md``), when the message asked for them
(``ACK_RECEPTION`` = Y) and its route names a ``business_acks`` destination: a
``ZAM^Z02^ZAM_Z01`` with ``N`` per recipient the server refused (ERR-5 from the
``SMTPERRORCODE`` table), and per intended recipient when the delivery is refused before
any mail (a combination outside the matrix, an unreadable document: ERR-8 the reason) or
given up after retries. ``Y`` comes from the delivery status notification, read back by
the receipts reader, never from the SMTP server's acceptance.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from connectors.mssante._mail import PATIENT_DOMAIN, Mail, build_mails
from connectors.mssante._matrix import audience
from connectors.mssante._progress import Sent, progress_markers, read_progress
from connectors.mssante._smtp import SmtpClient, Submission
from connectors.mssante._source import mail_source
from connectors.mssante._xdm import build_xdm
from connectors.mssante.config import MssanteDestinationConfig
from eai.business_ack import ZamError, smtp_error, unexplained_error, zam_follow_up
from eai.errors import (
    DeliveryError,
    NotFound,
    PermanentDeliveryError,
    StoreError,
    TransientDeliveryError,
)
from eai.messages import DeliveryResult, FollowUp, OutboxItem
from eai.net import client_context, run_blocking
from eai.registry import AttemptsReader, DestinationSpec, register_destination
from eai.xds import ACCEPTS

__all__ = ["MssanteDestination", "envelope_id", "prepare"]

log = logging.getLogger(__name__)

_REMEMBERED = 4096
"""Deliveries whose accepted parts are remembered across attempts (oldest forgotten)."""


def envelope_id(delivery_id: int) -> str:
    """The DSN ENVID of a delivery's mails (RFC 3461 xtext: plain ASCII)."""
    return f"eai-{delivery_id}"


def prepare(config: MssanteDestinationConfig, item: OutboxItem) -> list[Mail]:
    """The mails of ``item`` (blocking: parse, zip, build). Raises PermanentDeliveryError."""
    who = audience(item.facts.flags)
    source = mail_source(item)
    xdm = build_xdm(source.publication, config.metadata_settings(), config.software_id or "eai")
    return build_mails(config, item, source, xdm, who)


def _intended(item: OutboxItem) -> list[str]:
    """The mailboxes a delivery was meant for (a ZAM^Z02 names each): the RCT addresses
    and, when the message asks for it with a qualified INS, the patient's mailbox."""
    out = [
        r.address
        for r in item.facts.recipients
        if r.role == "RCT" and r.address and not r.address.lower().endswith("@" + PATIENT_DOMAIN)
    ]
    if item.facts.flags.get("DESTMSSANTEPAT") == "Y" and item.facts.ins:
        out.append(f"{item.facts.ins}@{PATIENT_DOMAIN}")
    return list(dict.fromkeys(out))


def _zams(item: OutboxItem, refused: list[tuple[str, ZamError]]) -> list[FollowUp]:
    """A ZAM^Z02 N per (mailbox, error), when the message asked for receipts."""
    made = (zam_follow_up(item, "Z02", False, error=e, mailbox=m) for m, e in refused)
    return [f for f in made if f is not None]


class MssanteDestination:
    """Mails :class:`~eai.messages.OutboxItem` documents through one MSSanté operator."""

    def __init__(self, config: MssanteDestinationConfig) -> None:
        self.config = config
        # Built now so that a bad certificate path fails at start, not at the first send.
        self._client = SmtpClient(config, client_context(config.tls))
        self._parts: OrderedDict[int, dict[str, Sent]] = OrderedDict()
        self._attempts: AttemptsReader | None = None

    def read_attempts_with(self, reader: AttemptsReader) -> None:
        """:class:`eai.registry.AttemptsAware`: how a retry reads what earlier attempts
        recorded (without it, only this process's memory of them)."""
        self._attempts = reader

    async def start(self) -> None:
        return None

    async def send(self, item: OutboxItem) -> DeliveryResult:
        try:
            return await self._send(item)
        except DeliveryError as exc:
            if not exc.follow_ups:
                # refused before any mail, or retried until the worker gives up: every
                # intended recipient gets its Z02 N (only used when this is the end)
                error = unexplained_error(str(exc)[:200])
                served = {
                    a for p in self._parts.get(item.delivery_id, {}).values() for a in p.accepted
                }
                failed = [(m, error) for m in _intended(item) if m not in served]
                exc.follow_ups = tuple(_zams(item, failed))
            raise

    async def _send(self, item: OutboxItem) -> DeliveryResult:
        mails = await run_blocking(prepare, self.config, item)
        done = self._parts.setdefault(item.delivery_id, {})
        self._parts.move_to_end(item.delivery_id)
        while len(self._parts) > _REMEMBERED:
            self._parts.popitem(last=False)
        notify = item.facts.flags.get("ACK_RECEPTION") == "Y"
        if item.attempts > 1 and self._attempts is not None:
            try:
                details = await self._attempts(item.delivery_id)
            except (StoreError, NotFound, OSError) as exc:  # never send blind: retry later
                raise TransientDeliveryError(
                    f"MSSanté: cannot read the earlier attempts: {exc}"
                ) from exc
            by_part = {m.part: m for m in mails}
            for part, (mid, taken) in read_progress(details, mails).items():
                if part not in done:
                    done[part] = self._outcome(item, by_part[part], taken, notify, mid)
        for mail in mails:
            if mail.part in done:
                continue
            try:
                submission = await run_blocking(
                    self._client.submit,
                    self.config.sender,
                    mail.recipients,
                    mail.data,
                    envelope_id(item.delivery_id),
                    notify,
                )
            except TransientDeliveryError as exc:
                if not done:
                    raise
                # journaled as this attempt's detail: the retry skips what is done
                raise TransientDeliveryError(
                    f"{exc}{progress_markers(done.values(), mails)}",
                    retry_after=exc.retry_after,
                    follow_ups=exc.follow_ups,
                ) from exc
            except PermanentDeliveryError as exc:
                if not done:
                    raise
                # dead, but the mails accepted are named (their receipts are correlated)
                raise PermanentDeliveryError(
                    f"{exc}{progress_markers(done.values(), mails)}", follow_ups=exc.follow_ups
                ) from exc
            done[mail.part] = self._outcome(item, mail, submission, notify)
        self._parts.pop(item.delivery_id, None)
        sent = [done[m.part] for m in mails]
        detail = f"ENVID {envelope_id(item.delivery_id)}; " + "; ".join(s.text for s in sent)
        zams = _zams(
            item, [(r.address, smtp_error(r.code, r.text)) for s in sent for r in s.refused]
        )
        if not any(s.delivered for s in sent):
            raise PermanentDeliveryError(
                f"MSSanté: every recipient refused: {detail}", follow_ups=zams
            )
        log.info(
            "destination %s: delivery %s mailed (%s)",
            self.config.name,
            item.delivery_id,
            ", ".join(s.message_id for s in sent if s.delivered),
        )
        return DeliveryResult(detail=detail, follow_ups=tuple(zams))

    def _outcome(
        self,
        item: OutboxItem,
        mail: Mail,
        submission: Submission,
        notify: bool,
        recorded: str = "",
    ) -> Sent:
        """What ``submission`` of ``mail`` did; ``recorded``: the Message-ID an earlier
        attempt journaled it with (read back, not logged again)."""
        ins = item.facts.ins
        message_id = recorded or mail.message_id

        def masked(text: str) -> str:
            return text.replace(ins, "<INS>") if ins else text

        refusals = [
            f"{'the patient mailbox' if mail.part == 'patient' else r.address} refused "
            f"{r.code} {masked(r.text)}"
            for r in submission.refused
        ]
        if submission.refused and not recorded:
            log.warning(
                "destination %s: delivery %s: %d of %d %s recipient(s) refused",
                self.config.name,
                item.delivery_id,
                len(submission.refused),
                len(mail.recipients),
                mail.part,
            )
        if not submission.accepted:
            text = f"{mail.part}: " + "; ".join(refusals)
            return Sent(mail.part, message_id, text, submission)
        text = f"{mail.part}: Message-ID {message_id} to {len(submission.accepted)} recipient(s)"
        if notify and not submission.dsn:
            text += " (the server offers no DSN: no delivery receipt)"
        if refusals:
            text += "; " + "; ".join(refusals)
        return Sent(mail.part, message_id, text, submission)

    async def close(self) -> None:
        await run_blocking(self._client.close)


def _factory(config: MssanteDestinationConfig) -> MssanteDestination:
    return MssanteDestination(config)


def _preview(config: MssanteDestinationConfig, item: OutboxItem) -> dict[str, Any]:
    """The console's view of a delivery: recipients and XDM metadata (the read recorded)."""
    from connectors.mssante._preview import preview

    return preview(config, item, _intended(item))


register_destination(
    DestinationSpec(
        type_name="mssante",
        config_model=MssanteDestinationConfig,
        factory=_factory,
        summary="MSSanté: CI-SIS documents mailed over SMTP with TLS (IHE XDM zip, X-MSS "
        "headers, the CI-SIS routing matrix); a patient's mailbox needs a qualified INS",
        accepts=ACCEPTS,
        preview=_preview,
    )
)
