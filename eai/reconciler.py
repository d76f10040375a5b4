"""Asks the regional identity server about each message's identity, and says when it is down.

Touches: network (the identity server through :class:`identity.pdqm.IdentityServerClient`).

The pipeline hands it the identities of a batch; each is reconciled concurrently (the
client caches answers and shares identical requests). A server that cannot be asked
makes :class:`identity.pdqm.IdentityServerUnavailable` the answer for that message:
the pipeline holds its strict deliveries and asks again later. The first failure of an
outage logs a warning; the first answer after it logs the end of the outage. The mails
are the ``identity_server`` alert's (:mod:`eai.alerts`, to ``identity.server.alert_to``
and ``alerts.notify``), which reads :attr:`Reconciler.outage_since`. Logs name no patient.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from eai.config import IdentityConfig
from eai.identity_gate import Reconciled
from identity.patient import PatientIdentity
from identity.pdqm import IdentityServerClient, IdentityServerUnavailable
from identity.reconcile import reconcile

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)


class Reconciler:
    """Reconciles identities with one identity server and tracks its outages."""

    def __init__(
        self,
        client: IdentityServerClient,
        config: IdentityConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock
        self.outage_since: float | None = None
        """Monotonic time of the first failure of the current outage; None when up."""
        self._retry_at = 0.0

    def unavailable_now(self) -> bool:
        """The server failed lately and asking again is not worth it yet."""
        return self.outage_since is not None and self._clock() < self._retry_at

    async def reconcile_all(
        self, identities: Mapping[int, PatientIdentity]
    ) -> dict[int, Reconciled]:
        """What the server says of each identity (by message id)."""
        ids = list(identities)
        answers = await asyncio.gather(*(self._one(identities[i]) for i in ids))
        return dict(zip(ids, answers, strict=True))

    async def _one(self, identity: PatientIdentity) -> Reconciled:
        try:
            found = await reconcile(self._client, identity)
        except IdentityServerUnavailable as exc:
            self._down(exc)
            return exc
        self._up()
        return found

    def _down(self, exc: IdentityServerUnavailable) -> None:
        self._retry_at = self._clock() + exc.retry_after
        if self.outage_since is not None:
            return
        self.outage_since = self._clock()
        log.warning(
            "identity server unavailable (%s): deliveries that need a qualified identity are "
            "held and reconciled again when it answers",
            exc.reason,
        )

    def _up(self) -> None:
        if self.outage_since is None:
            return
        lasted = self._clock() - self.outage_since
        self.outage_since = None
        log.warning("identity server answers again after %.0f s", lasted)

    async def aclose(self) -> None:
        """Closes the client."""
        await self._client.aclose()
