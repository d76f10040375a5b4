"""Association negotiation (PS3.8 7.1, 9.3.2-9.3.4): the A-ASSOCIATE-RQ, -AC and -RJ PDUs.

Touches: nothing (pure functions on bytes and pynetdicom's PDU objects).

The A-ASSOCIATE PDUs are encoded and decoded by ``pynetdicom.pdu`` (public
module), presentation contexts negotiated by
``pynetdicom.presentation.negotiate_as_acceptor``; the constants pynetdicom
keeps in its private ``_globals`` are defined here from the standard. Used by
the acceptor (:func:`decode_rq`, :func:`accept`, :func:`reject`) and the
requestor (:func:`request`, :func:`decode_answer`); every decoder raises
:class:`dicom_router._pdu.ProtocolError` on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from pydicom.uid import UID
from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    build_context,
)
from pynetdicom.pdu import A_ASSOCIATE_AC as AssociateAcPdu
from pynetdicom.pdu import A_ASSOCIATE_RJ as AssociateRjPdu
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from dicom_router._pdu import A_ASSOCIATE_RJ, ProtocolError, pdu_header

__all__ = [
    "APPLICATION_CONTEXT_NAME",
    "Accepted",
    "Answer",
    "Context",
    "MAX_CONTEXTS",
    "accept",
    "decode_answer",
    "decode_rq",
    "reject",
    "request",
]

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
"""The DICOM Application Context Name (PS3.7 A.2.1), the only one defined."""
MAX_CONTEXTS = 128
"""Presentation context IDs are odd, 1..255 (PS3.8 9.3.2.2)."""

Context = tuple[str, str]
"""(Abstract Syntax = SOP Class UID, Transfer Syntax UID): one context proposed."""


def _user_information(
    max_pdu: int,
) -> tuple[
    MaximumLengthNotification,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
]:
    """Maximum Length (PS3.8 D.1), Implementation Class UID and Version Name (PS3.7 D.3.3.2)."""
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = max_pdu
    impl_uid = ImplementationClassUIDNotification()
    impl_uid.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    impl_name = ImplementationVersionNameNotification()
    impl_name.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
    return max_length, impl_uid, impl_name


def _max_length(primitive: A_ASSOCIATE) -> int:
    for item in primitive.user_information:
        if isinstance(item, MaximumLengthNotification):
            return int(item.maximum_length_received or 0)
    return 0


# -- acceptor side -----------------------------------------------------------


def decode_rq(raw: bytes) -> tuple[A_ASSOCIATE, str, str]:
    """The A-ASSOCIATE-RQ PDU ``raw`` (header included): the primitive, the calling and
    the called AE titles (stripped)."""
    try:
        pdu = AssociateRqPdu()
        pdu.decode(raw)
        rq = pdu.to_primitive()
        calling = str(rq.calling_ae_title or "").strip()
        called = str(rq.called_ae_title or "").strip()
    except Exception as exc:  # noqa: BLE001 - pynetdicom raises many kinds on bad input
        raise ProtocolError(f"A-ASSOCIATE-RQ cannot be decoded: {type(exc).__name__}") from None
    return rq, calling, called


class Accepted:
    """What :func:`accept` negotiated: the A-ASSOCIATE-AC PDU and the association's terms."""

    __slots__ = ("pdu", "contexts", "peer_max_pdu")

    def __init__(
        self, pdu: bytes, contexts: dict[int, PresentationContext], peer_max_pdu: int
    ) -> None:
        self.pdu = pdu
        self.contexts = contexts
        """Accepted presentation context ID -> context (its one transfer syntax)."""
        self.peer_max_pdu = peer_max_pdu


def accept(rq: A_ASSOCIATE, supported: Sequence[PresentationContext], max_pdu: int) -> Accepted:
    """Negotiates ``rq``'s presentation contexts and SCP/SCU roles (PS3.7 D.3.3.4)
    against ``supported``; the A-ASSOCIATE-AC announcing ``max_pdu``."""
    roles: dict[UID, tuple[bool | None, bool | None]] = {}
    for item in rq.user_information:
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid:
            roles[UID(str(item.sop_class_uid))] = (item.scu_role, item.scp_role)
    result, ac_roles = negotiate_as_acceptor(
        rq.presentation_context_definition_list, list(supported), roles or None
    )
    ac = A_ASSOCIATE()
    ac.application_context_name = UID(APPLICATION_CONTEXT_NAME)
    ac.calling_ae_title = rq.calling_ae_title
    ac.called_ae_title = rq.called_ae_title
    ac.result = 0x00
    ac.result_source = 0x01
    ac.presentation_context_definition_results_list = result
    ac.user_information = [*_user_information(max_pdu), *ac_roles]
    pdu = AssociateAcPdu()
    pdu.from_primitive(ac)
    accepted = {cast(int, cx.context_id): cx for cx in result if cx.result == 0x00}
    return Accepted(pdu.encode(), accepted, _max_length(rq))


def reject(result: int, source: int, reason: int) -> bytes:
    """The A-ASSOCIATE-RJ PDU (PS3.8 9.3.4): Result, Source, Reason/Diag."""
    rj = A_ASSOCIATE()
    rj.result, rj.result_source, rj.diagnostic = result, source, reason
    pdu = AssociateRjPdu()
    pdu.from_primitive(rj)
    return bytes(pdu.encode())


# -- requestor side ----------------------------------------------------------


def request(
    contexts: Sequence[Context], calling_ae: str, called_ae: str, max_pdu: int
) -> tuple[bytes, dict[int, Context]]:
    """The A-ASSOCIATE-RQ proposing each (SOP class, transfer syntax) as its own
    presentation context (IDs 1, 3, 5...); the PDU and the proposed contexts by ID."""
    if not 0 < len(contexts) <= MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} presentation contexts (1 to {MAX_CONTEXTS})")
    proposed: dict[int, Context] = {}
    definitions = []
    for i, (sop_class, syntax) in enumerate(contexts):
        cx = build_context(sop_class, syntax)
        cx.context_id = 2 * i + 1
        proposed[2 * i + 1] = (sop_class, syntax)
        definitions.append(cx)
    rq = A_ASSOCIATE()
    rq.application_context_name = UID(APPLICATION_CONTEXT_NAME)
    rq.calling_ae_title = calling_ae
    rq.called_ae_title = called_ae
    rq.presentation_context_definition_list = definitions
    rq.user_information = [*_user_information(max_pdu)]
    pdu = AssociateRqPdu()
    pdu.from_primitive(rq)
    return bytes(pdu.encode()), proposed


class Answer:
    """The peer's answer to an A-ASSOCIATE-RQ: accepted contexts, or its rejection."""

    __slots__ = ("accepted", "peer_max_pdu", "rejection")

    def __init__(
        self,
        accepted: dict[Context, int],
        peer_max_pdu: int,
        rejection: tuple[int, int, int, str] | None,
    ) -> None:
        self.accepted = accepted
        """Accepted (SOP class, transfer syntax) -> presentation context ID."""
        self.peer_max_pdu = peer_max_pdu
        self.rejection = rejection
        """A-ASSOCIATE-RJ: (result, source, reason, text); None when accepted."""


def decode_answer(pdu_type: int, body: bytes | memoryview, proposed: dict[int, Context]) -> Answer:
    """The A-ASSOCIATE-AC or -RJ (``pdu_type``, variable field ``body``) answering the
    contexts ``proposed``."""
    rejected = pdu_type == A_ASSOCIATE_RJ
    raw = pdu_header(pdu_type, len(body)) + bytes(body)
    try:
        if rejected:
            rj = AssociateRjPdu()
            rj.decode(raw)
            prim = rj.to_primitive()
            text = f"{prim.result_str}, {prim.source_str}: {prim.reason_str}"
            verdict = (int(prim.result or 0), int(prim.result_source or 0))
            return Answer({}, 0, (*verdict, int(prim.diagnostic or 0), text))
        pdu = AssociateAcPdu()
        pdu.decode(raw)
        ac = pdu.to_primitive()
        accepted: dict[Context, int] = {}
        for cx in ac.presentation_context_definition_results_list:
            wanted = proposed.get(cast(int, cx.context_id))
            if wanted is None or cx.result != 0x00 or not cx.transfer_syntax:
                continue
            if str(cx.transfer_syntax[0]) == wanted[1]:
                accepted[wanted] = cast(int, cx.context_id)
        return Answer(accepted, _max_length(ac), None)
    except Exception as exc:  # noqa: BLE001 - pynetdicom raises many kinds on bad input
        what = "A-ASSOCIATE-RJ" if rejected else "A-ASSOCIATE-AC"
        raise ProtocolError(f"{what} cannot be decoded: {type(exc).__name__}") from None
