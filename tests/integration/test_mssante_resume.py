"""A retried MSSanté delivery, on a destination that never saw the first attempt (a
restart, another node): only what the journaled attempt did not record as done is
mailed; the refusals it recorded still make their ZAM^Z02 N and stay in the detail."""

from __future__ import annotations

import asyncio

import pytest

from connectors.mssante.config import MssanteDestinationConfig
from connectors.mssante.destination import MssanteDestination
from eai import hl7
from eai.errors import StoreError, TransientDeliveryError
from eai.messages import DeliveryResult, MessageFacts, OutboxItem, Recipient
from tests._cisis import ORU, build, segments
from tests._mss_smtp import mss_config, mss_smtp
from tests._pki import Pki, make_pki

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
PS = "adam.hoda@test-ci-sis.mssante.fr"
OTHER = "eve.martin@test-ci-sis.mssante.fr"
PATIENT = f"{INS}@patient.mssante.fr"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mss-pki"))


def _item(attempts: int) -> OutboxItem:
    segs = segments(ORU)
    at = next(i for i, s in enumerate(segs) if s.startswith("PRT||UC||RCT"))
    extra = f"PRT||UC||RCT^^participation|||||||||||^^X.400^{OTHER}"
    payload = build([*segs[: at + 1], extra, *segs[at + 1 :]])
    message = hl7.parse(payload)
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    facts = MessageFacts(hl7.meta_dmp_mss(message), recipients, INS, INS_OID)
    return OutboxItem(7, 9, "mss", payload, "015", "k", attempts, facts=facts, return_to="r")


def _send(cfg: MssanteDestinationConfig, item: OutboxItem, journal: list[str]) -> DeliveryResult:
    """One attempt on a new destination reading ``journal`` (the attempts' details); a
    transient failure's detail is journaled as the worker does."""

    async def run() -> DeliveryResult:
        destination = MssanteDestination(cfg)

        async def attempts(delivery_id: int) -> tuple[str, ...]:
            assert delivery_id == item.delivery_id
            return tuple(journal)

        destination.read_attempts_with(attempts)
        try:
            return await destination.send(item)
        except TransientDeliveryError as exc:
            journal.append(f"#{item.attempts} retrying: {exc}")
            raise
        finally:
            await destination.close()

    return asyncio.run(run())


def test_a_new_destination_mails_only_what_the_journal_does_not_record(pki: Pki) -> None:
    journal: list[str] = []
    with mss_smtp(pki) as inbox:
        cfg = mss_config(pki, inbox.port)
        inbox.answers[OTHER] = "550 5.1.1 unknown user"
        inbox.answers[PATIENT] = "451 4.3.0 later"
        with pytest.raises(TransientDeliveryError):
            _send(cfg, _item(1), journal)
        assert [r for _, r, _ in inbox.mails] == [[PS]]
        first = inbox.mails[0][2]["Message-ID"]
        assert INS not in journal[0] and OTHER not in journal[0] and first in journal[0]
        del inbox.answers[PATIENT]
        result = _send(cfg, _item(2), journal)
    # the professional once, the refused one never tried again, the patient once
    assert [r for _, r, _ in inbox.mails] == [[PS], [PATIENT]]
    assert inbox.rcpt_calls == 4
    assert first in result.detail and inbox.mails[1][2]["Message-ID"] in result.detail
    assert f"{OTHER} refused 550 5.1.1" in result.detail
    (zam,) = result.follow_ups  # the recorded refusal's ZAM^Z02 N
    assert f"^^X.400^{OTHER}" in zam.payload.decode()


def test_a_journal_that_cannot_be_read_mails_nobody_and_retries(pki: Pki) -> None:
    async def broken(delivery_id: int) -> tuple[str, ...]:
        raise StoreError("journal down")

    async def run(cfg: MssanteDestinationConfig) -> None:
        destination = MssanteDestination(cfg)
        destination.read_attempts_with(broken)
        try:
            await destination.send(_item(2))
        finally:
            await destination.close()

    with mss_smtp(pki) as inbox:
        with pytest.raises(TransientDeliveryError, match="cannot read the earlier attempts"):
            asyncio.run(run(mss_config(pki, inbox.port)))
    assert inbox.mails == [] and inbox.rcpt_calls == 0
