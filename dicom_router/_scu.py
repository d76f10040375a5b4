"""The DICOM SCU: C-STORE and C-ECHO to one peer on reused associations (blocking).

Touches: network (outbound associations, optionally TLS).

The one SCU of the package, above the requestor
(:class:`dicom_router._requestor.Requestor`): the forwarder sends spooled
instances with it (:class:`dicom_router._store_scu.StoreScu`, in the
forwarding process) and ``eai dicom echo|send`` (:mod:`dicom_router.client`)
speaks to a peer with it, so the CLI exercises the production sender.

:class:`Scu` keeps ``connections`` :class:`Link` s (one association each, one
operation at a time): an association is opened on first use, proposing the
contexts the link has used so far (the last :data:`MAX_CONTEXTS`) plus the one
needed, reused while the peer keeps it and it was used within
``idle_release``, reopened when a new context is needed. Every failure is a
delivery error (:mod:`eai.errors`) whose text starts with the peer's
``AE@HOST:PORT``: :class:`~eai.errors.PermanentDeliveryError` when the peer
refuses for good (association rejected permanently, context not accepted),
:class:`~eai.errors.TransientDeliveryError` otherwise (connection, TLS,
timeout, abort).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.uid import UID

from dicom_router._dimse import VERIFICATION, ProtocolError
from dicom_router._requestor import (
    MAX_CONTEXTS,
    Aborted,
    Context,
    NoResponse,
    Rejected,
    Requestor,
)
from eai.errors import PermanentDeliveryError, TransientDeliveryError

__all__ = ["ECHO_CONTEXT", "MAX_CONTEXTS", "Context", "Link", "Scu", "Target", "tls_reason"]

log = logging.getLogger("dicom_router.forward")  # the destination's logger, as before the split

ECHO_CONTEXT: Context = (VERIFICATION, "1.2.840.10008.1.2")
"""Verification in Implicit VR Little Endian, which every SCP supports (PS3.5 10.1)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The peer and how to speak to it."""

    name: str
    """For logs: the destination's name (or "cli")."""
    host: str
    port: int
    ae_title: str
    calling_ae: str
    max_pdu: int
    connect_timeout: float
    acse_timeout: float
    network_timeout: float
    dimse_timeout: float
    idle_release: float = float("inf")
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class Link:
    """One association and the contexts it proposed; used by one operation at a time."""

    def __init__(self) -> None:
        self.assoc: Requestor | None = None
        self.proposed: OrderedDict[Context, None] = OrderedDict()
        self.last_used = 0.0
        self.lock = threading.RLock()


class Scu:
    """C-STORE and C-ECHO to one peer over ``connections`` links."""

    def __init__(self, target: Target, connections: int = 1) -> None:
        self.target = target
        self.address = target.address
        self.links = [Link() for _ in range(connections)]

    def propose(self, link: Link, contexts: Iterable[Context]) -> None:
        """Proposes ``contexts`` (at most :data:`MAX_CONTEXTS`) on ``link``'s next
        association, which the next operation opens (the current one is released)."""
        with link.lock:
            self._drop(link, release=True)
            link.proposed = OrderedDict.fromkeys(contexts)

    def release_idle(self, idle: float) -> None:
        """Releases the associations unused for ``idle`` seconds (0: all), but not one
        that is in use."""
        now = time.monotonic()
        for link in self.links:
            if not link.lock.acquire(blocking=False):
                continue  # in use now
            try:
                if link.assoc is not None and now - link.last_used >= idle:
                    self._drop(link, release=True)
            finally:
                link.lock.release()

    def store(
        self,
        link: Link,
        context: Context,
        sop_instance: str,
        data: bytes | bytearray | memoryview,
        *,
        sop_class: str | None = None,
    ) -> int:
        """C-STORE ``data`` (encoded in ``context``'s transfer syntax); the response's
        Status. Raises the delivery errors."""
        with link.lock:
            assoc = self.association(link, context)
            timeout = self.target.dimse_timeout
            try:
                status = assoc.store(context, sop_instance, data, timeout, sop_class_uid=sop_class)
            except (Aborted, NoResponse) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(
                    f"{self.address}: no C-STORE response (aborted, or nothing within "
                    f"{timeout:g} s)"
                ) from exc
            except (OSError, ProtocolError) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(f"{self.address}: C-STORE failed: {exc}") from exc
            link.last_used = time.monotonic()
            return status

    def echo(self, link: Link) -> int:
        """C-ECHO; the response's Status. Raises the delivery errors."""
        with link.lock:
            assoc = self.association(link, ECHO_CONTEXT)
            timeout = self.target.dimse_timeout
            try:
                status = assoc.echo(ECHO_CONTEXT, timeout)
            except (Aborted, NoResponse) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(
                    f"{self.address}: no C-ECHO response (aborted, or nothing within {timeout:g} s)"
                ) from exc
            except (OSError, ProtocolError) as exc:
                self._drop(link, release=False)
                raise TransientDeliveryError(f"{self.address}: C-ECHO failed: {exc}") from exc
            link.last_used = time.monotonic()
            return status

    def association(self, link: Link, context: Context) -> Requestor:
        """``link``'s association, opened or reopened as needed, with ``context`` accepted;
        raises the delivery errors."""
        cfg = self.target
        with link.lock:
            current = link.assoc
            if current is not None and current.alive():
                if context in current.accepted:
                    if time.monotonic() - link.last_used < cfg.idle_release:
                        return current
                elif context in link.proposed:
                    raise self._not_accepted(context)
            self._drop(link, release=True)
            wanted = OrderedDict(link.proposed)
            wanted[context] = None
            wanted.move_to_end(context)
            while len(wanted) > MAX_CONTEXTS:
                wanted.popitem(last=False)
            assoc = self._open(list(wanted))
            link.assoc = assoc
            link.proposed = wanted
            link.last_used = time.monotonic()
            log.debug("destination %s: associated with %s", cfg.name, self.address)
            if context not in assoc.accepted:
                raise self._not_accepted(context)
            return assoc

    def _open(self, contexts: list[Context]) -> Requestor:
        cfg = self.target
        try:
            return Requestor.open(
                cfg.host,
                cfg.port,
                contexts,
                calling_ae=cfg.calling_ae,
                called_ae=cfg.ae_title,
                max_pdu=cfg.max_pdu,
                connect_timeout=cfg.connect_timeout,
                acse_timeout=cfg.acse_timeout,
                network_timeout=cfg.network_timeout,
                ssl_context=cfg.ssl_context,
                server_hostname=cfg.server_hostname or cfg.host,
            )
        except Rejected as exc:
            text = f"{self.address} rejected the association ({exc})"
            if exc.permanent:
                raise PermanentDeliveryError(text) from exc
            raise TransientDeliveryError(text) from exc
        except ssl.SSLError as exc:
            raise TransientDeliveryError(
                f"{self.address}: TLS handshake failed: {tls_reason(exc)}"
            ) from exc
        except Aborted as exc:
            raise TransientDeliveryError(f"{self.address} aborted the association") from exc
        except NoResponse as exc:
            raise TransientDeliveryError(f"{self.address}: {exc}") from exc
        except ConnectionRefusedError as exc:  # nobody listens there: as eai send says it
            raise TransientDeliveryError(
                f"{self.address}: cannot connect: {_os_reason(exc)}"
            ) from exc
        except (OSError, ProtocolError) as exc:
            raise TransientDeliveryError(
                f"{self.address}: cannot connect or negotiate: {_os_reason(exc)}"
            ) from exc

    def _not_accepted(self, context: Context) -> PermanentDeliveryError:
        return PermanentDeliveryError(
            f"{self.address} does not accept SOP class {context[0]} "
            f"in transfer syntax {_ts_name(context[1])}"
        )

    def _drop(self, link: Link, *, release: bool) -> None:
        assoc, link.assoc = link.assoc, None
        if assoc is None:
            return
        try:
            if release:
                assoc.release()
            else:
                assoc.abort()
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("destination %s: closing an association failed", self.target.name)
            assoc.close()


def _os_reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _ts_name(uid: str) -> str:
    return f"{UID(uid).name} ({uid})"


def tls_reason(exc: ssl.SSLError) -> str:
    """The reason of a TLS failure, e.g. "certificate verify failed: ..."."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)
