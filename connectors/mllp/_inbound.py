"""Decide what one received MLLP block becomes: a journal entry and the acknowledgement to send.

Touches: nothing itself; the journal is reached through the ``ingest`` callable passed in.

HL7 v2.5 section 2.9 (acknowledgement modes):

- original mode (MSH-15 empty): always answer; AA accepted, AE error, AR rejected;
- enhanced mode (MSH-15 valued): commit acknowledgement CA / CE / CR, sent
  according to MSH-15: AL always, NE never, SU on success only, ER on error only.

The ACK goes out only after ``ingest`` returned, that is after the durable
commit; a journal failure is answered AE/CE (ERR 207), never AA. Logs carry
ids, sizes, outcomes and the peer address, never payload content.

A retransmission (same listener, MSH-3, MSH-4 and MSH-10, and the same content,
line terminators aside) gets the stored ACK byte for byte and is journaled once.
The same control id with another content is a new message: the journal stores and
routes it, marks it ``control id reused`` and reports it to the sending facility;
the listener answers it with its own ACK and logs a warning (ids only).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.mllp._framing import Frame, FrameEvent, ProtocolError
from eai.errors import InputError, SenderNotAllowed, StoreError
from eai.hl7 import MessageHeader, build_ack, guess_control_id, read_header
from eai.messages import JournalEntry
from eai.registry import Ingest

__all__ = ["FrameHandler", "Reply"]

log = logging.getLogger("connectors.mllp.listener")

REJECTED_HEAD_BYTES = 64 * 1024
"""How much of an oversize block is journaled."""

_KEY_PART_CHARS = 64
"""Longer MSH-3/4/10 values enter the dedup key as a hash: the key (listener name up to
64, three parts up to 128 once escaped, the journal's content suffix of 49) fits the
journal's 512-character column."""


def _key_part(value: str) -> str:
    """One part of a dedup key, unambiguous whatever it contains: ``\\`` and ``|`` are
    escaped (a sender may choose another field separator and put ``|`` in MSH-3), a long
    value is replaced by ``#`` and its SHA-256 (header values, not patient data), and a
    value that starts with ``#`` gets a ``\\`` before it."""
    if len(value) > _KEY_PART_CHARS:
        return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return "\\" + value if value.startswith("#") else value


def dedup_key(listener: str, header: MessageHeader) -> str:
    """``<listener>|<MSH-3>|<MSH-4>|<MSH-10>``: the journal's retransmission key (the
    journal also compares contents: see :class:`eai.messages.JournalEntry`)."""
    parts = (header.sending_application, header.sending_facility, header.control_id)
    return "|".join((listener, *(_key_part(p) for p in parts)))


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one block: ``ack`` to write (None: stay silent) and the outcome for logs."""

    ack: bytes | None
    outcome: str
    control_id: str = ""


class _AckIds:
    """MSH-10 of the ACKs this process builds: 10 random hex digits drawn when the
    process starts (again in a forked child), then a 10-digit counter. Unique within the
    process, and across processes as a random 40-bit prefix is; no system call per ACK
    (``uuid4`` read the kernel's random source for each one)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(5).hex()
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFF:010x}"


_ACK_IDS = _AckIds()


def new_control_id() -> str:
    """MSH-10 of an ACK we build: 20 characters, the v2.5 maximum."""
    return _ACK_IDS.next()


def _now() -> datetime:
    return datetime.now(UTC)


def _should_answer(header: MessageHeader | None, *, success: bool) -> bool:
    """MSH-15 accept acknowledgement type (HL7 table 0155); original mode always answers."""
    if header is None or not header.enhanced_mode:
        return True
    mode = header.accept_ack_type.strip().upper()
    if mode == "NE":
        return False
    if mode == "SU":
        return success
    if mode == "ER":
        return not success
    return True  # AL, or a value outside table 0155: answering is the safe side


def _code(header: MessageHeader | None, original: str) -> str:
    """``AA``/``AE``/``AR`` in original mode, ``CA``/``CE``/``CR`` in enhanced mode."""
    if header is not None and header.enhanced_mode:
        return "C" + original[1]
    return original


class FrameHandler:
    """Answers the blocks of one listener (shared by all its connections)."""

    def __init__(
        self,
        *,
        listener: str,
        ingest: Ingest,
        allowed_senders: frozenset[str] | None,
        default_charset: str,
        max_message_bytes: int,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._name = listener
        self._ingest = ingest
        self._allowed = allowed_senders
        self._charset = default_charset
        self._max = max_message_bytes
        self._clock = clock

    async def on_event(self, event: FrameEvent, peer: str) -> Reply | None:
        """The reply to one decoder event; never raises (except cancellation)."""
        if isinstance(event, Frame):
            return await self.on_frame(event.payload, peer)
        return await self.on_protocol_error(event, peer)

    async def on_frame(self, payload: bytes, peer: str) -> Reply:
        header: MessageHeader | None = None
        try:
            try:
                header = read_header(payload, default_charset=self._charset)
            except InputError as exc:
                return await self._reject(payload, None, exc, peer)
            if self._allowed is not None and header.sending_facility not in self._allowed:
                refusal = SenderNotAllowed(
                    f"sending facility not allowed on listener {self._name}", "207"
                )
                return await self._reject(payload, header, refusal, peer)
            return await self._accept(payload, header, peer)
        except Exception:
            # A listener never dies because of input: answer AE, keep serving.
            log.exception(
                "listener %s: internal error on a %d-byte message from %s",
                self._name,
                len(payload),
                peer,
            )
            return self._internal_error(payload, header)

    async def on_protocol_error(self, err: ProtocolError, peer: str) -> Reply | None:
        try:
            return await self._protocol_error(err, peer)
        except Exception:
            log.exception(
                "listener %s: internal error on a framing error from %s", self._name, peer
            )
            return self._internal_error(err.data, None)

    # -- outcomes -----------------------------------------------------------

    async def _accept(self, payload: bytes, header: MessageHeader, peer: str) -> Reply:
        ack = build_ack(header, _code(header, "AA"), control_id=new_control_id())
        entry = JournalEntry(
            listener=self._name,
            payload=payload,
            received_at=self._clock(),
            status="received",
            peer=peer,
            dedup_key=dedup_key(self._name, header),
            dedup_by_content=True,
            control_id=header.control_id,
            message_type=header.message_type,
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            ack=ack,
        )
        try:
            result = await self._ingest(entry)
        except StoreError as exc:
            log.error(
                "listener %s: journal unavailable, answering %s to control id %s from %s: %s",
                self._name,
                _code(header, "AE"),
                header.control_id,
                peer,
                exc,
            )
            nack = build_ack(
                header,
                _code(header, "AE"),
                control_id=new_control_id(),
                text="journal unavailable",
                error=InputError("journal unavailable", "207"),
            )
            return self._reply(header, nack, "journal_error", success=False)
        if result.duplicate:
            log.info(
                "listener %s: retransmission of control id %s from %s (message %d), "
                "answering the stored ACK",
                self._name,
                header.control_id,
                peer,
                result.message_id,
            )
            return self._reply(header, result.stored_ack or ack, "duplicate", success=True)
        if result.reuses is not None:
            log.warning(
                "listener %s: control id %s from %s/%s reused with another content "
                "(message %d had it): journaled as message %d, reported to the facility",
                self._name,
                header.control_id,
                header.sending_application,
                header.sending_facility,
                result.reuses,
                result.message_id,
            )
            return self._reply(header, ack, "accepted", success=True)
        log.debug(
            "listener %s: accepted %s control id %s (%d bytes) from %s as message %d",
            self._name,
            header.message_type,
            header.control_id,
            len(payload),
            peer,
            result.message_id,
        )
        return self._reply(header, ack, "accepted", success=True)

    async def _reject(
        self,
        payload: bytes,
        header: MessageHeader | None,
        error: InputError,
        peer: str,
        *,
        journaled_payload: bytes | None = None,
    ) -> Reply:
        guessed = guess_control_id(payload) if header is None else header.control_id
        ack = build_ack(
            header,
            _code(header, "AR"),
            control_id=new_control_id(),
            error=error,
            fallback_control_id=guessed,
        )
        log.warning(
            "listener %s: rejected control id %r (%d bytes) from %s: %s (HL7 error %s)",
            self._name,
            guessed,
            len(payload),
            peer,
            error.reason,
            error.hl7_code,
        )
        await self._journal_rejected(
            journaled_payload if journaled_payload is not None else payload,
            header,
            error,
            ack,
            peer,
            guessed,
        )
        answer = ack if _should_answer(header, success=False) else None
        return Reply(answer, "rejected", guessed)

    async def _protocol_error(self, err: ProtocolError, peer: str) -> Reply | None:
        if err.kind == "junk":
            log.info(
                "listener %s: discarded %d bytes outside MLLP blocks from %s",
                self._name,
                err.size,
                peer,
            )
            return None
        if err.kind == "unterminated":
            # The sender restarted a block or closed mid-block: it expects no answer.
            log.info(
                "listener %s: dropped an unterminated MLLP block of %d bytes from %s",
                self._name,
                err.size,
                peer,
            )
            return None
        if err.kind == "empty":
            log.warning("listener %s: empty MLLP block from %s, answering AR", self._name, peer)
            ack = build_ack(
                None,
                "AR",
                control_id=new_control_id(),
                error=InputError("empty MLLP block", "100"),
            )
            return Reply(ack, "rejected")
        if err.kind == "oversize":
            # HL7 v2.5 table 0357 has no code for a message too large (104 "value too
            # long" came with v2.7, and is about one field): 102 "data type error" is the
            # v2.5 code for a value breaking its declared constraints, length included.
            # Not 100 (segment order), nor 207 (our fault, worth a resend as it is).
            # ERR-8 says the limit, so that the sender's team knows what to change.
            error = InputError(
                f"message exceeds {self._max} bytes, the size limit of listener "
                f"{self._name} (max_message_bytes): not accepted, do not resend as is",
                "102",
            )
            head = err.data[:REJECTED_HEAD_BYTES]
            return await self._reject(head, None, error, peer, journaled_payload=head)
        # bad_end: EB not followed by CR.
        error = InputError("MLLP block end 0x1C not followed by 0x0D", "100")
        return await self._reject(err.data, None, error, peer)

    def _internal_error(self, payload: bytes, header: MessageHeader | None) -> Reply:
        guessed = header.control_id if header is not None else guess_control_id(payload)
        ack = build_ack(
            header,
            _code(header, "AE"),
            control_id=new_control_id(),
            text="internal error",
            error=InputError("internal error", "207"),
            fallback_control_id=guessed,
        )
        return self._reply(header, ack, "internal_error", success=False)

    # -- helpers ------------------------------------------------------------

    def _reply(
        self, header: MessageHeader | None, ack: bytes, outcome: str, *, success: bool
    ) -> Reply:
        control_id = header.control_id if header is not None else ""
        return Reply(ack if _should_answer(header, success=success) else None, outcome, control_id)

    async def _journal_rejected(
        self,
        payload: bytes,
        header: MessageHeader | None,
        error: InputError,
        ack: bytes,
        peer: str,
        control_id: str,
    ) -> None:
        entry = JournalEntry(
            listener=self._name,
            payload=payload,
            received_at=self._clock(),
            status="rejected",
            peer=peer,
            dedup_key=None,
            control_id=control_id,
            message_type=header.message_type if header is not None else "",
            sending_application=header.sending_application if header is not None else "",
            sending_facility=header.sending_facility if header is not None else "",
            ack=ack,
            reject_reason=error.reason,
        )
        try:
            await self._ingest(entry)
        except StoreError as exc:
            # The answer stays AR: the message is unacceptable whatever the journal says.
            log.error(
                "listener %s: could not journal a rejected message from %s: %s",
                self._name,
                peer,
                exc,
            )
