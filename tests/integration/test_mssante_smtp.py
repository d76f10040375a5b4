"""MSSanté destination against an SMTP server with TLS (aiosmtpd): the mails received,
per-recipient outcomes (5xx kept, 4xx retried with nobody served), TLS failures retried."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest

from connectors.mssante.config import MssanteDestinationConfig
from connectors.mssante.destination import MssanteDestination
from eai import hl7
from eai.errors import PermanentDeliveryError, TransientDeliveryError
from eai.messages import MessageFacts, OutboxItem, Recipient
from standins.net import free_port
from tests._cisis import ORU, build, segments
from tests._mss_smtp import mss_smtp
from tests._pki import Pki, make_pki

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
PS = "adam.hoda@test-ci-sis.mssante.fr"
OTHER = "eve.martin@test-ci-sis.mssante.fr"
PATIENT = f"{INS}@patient.mssante.fr"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mss-pki"))


def two_professionals() -> bytes:
    segs = segments(ORU)
    at = next(i for i, s in enumerate(segs) if s.startswith("PRT||UC||RCT"))
    extra = f"PRT||UC||RCT^^participation|||||||||||^^X.400^{OTHER}"
    return build([*segs[: at + 1], extra, *segs[at + 1 :]])


def item(payload: bytes = ORU, delivery_id: int = 5, attempts: int = 1, **flags: str) -> OutboxItem:
    message = hl7.parse(payload)
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    facts = MessageFacts({**hl7.meta_dmp_mss(message), **flags}, recipients, INS, INS_OID)
    return OutboxItem(
        delivery_id, 9, "mss", payload, "015", "k", attempts, facts=facts, return_to="lab-return"
    )


def zam_segments(payload: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for seg in payload.decode().split("\r"):
        if seg:
            out.setdefault(seg.split("|", 1)[0], []).append(seg)
    return out


def config(pki: Pki, port: int, *, cert: bool = True, **extra: object) -> MssanteDestinationConfig:
    tls: dict[str, object] = {"ca": str(pki.ca), "server_hostname": "localhost"}
    if cert:
        tls |= {"cert": str(pki.client_cert), "key": str(pki.client_key)}
    return MssanteDestinationConfig.model_validate(
        {
            "name": "mss",
            "host": "127.0.0.1",
            "port": port,
            "tls": tls,
            "sender": "labo-auto@labo.mssante.fr",
            "source_id": "1.2.250.1.999.1.1",
            "connect_timeout": "3s",
            "response_timeout": "5s",
            **extra,
        }
    )


def send(cfg: MssanteDestinationConfig, it: OutboxItem):
    async def run():
        destination = MssanteDestination(cfg)
        await destination.start()
        try:
            return await destination.send(it)
        finally:
            await destination.close()

    return asyncio.run(run())


def test_starttls_with_client_certificate_delivers_both_mails(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        result = send(config(pki, inbox.port), item())
    assert [rcpts for _, rcpts, _ in inbox.mails] == [[PS], [PATIENT]]
    assert all(sender == "labo-auto@labo.mssante.fr" for sender, _, _ in inbox.mails)
    ps = inbox.mails[0][2]
    assert ps["Message-ID"].startswith("<eai.5.") and ps["Message-ID"] in result.detail
    assert "ENVID eai-5" in result.detail
    zipped = next(p for p in ps.iter_attachments() if p.get_filename() == "IHE_XDM.zip")
    names = zipfile.ZipFile(io.BytesIO(zipped.get_content())).namelist()
    assert "IHE_XDM/SUBSET01/METADATA.XML" in names
    assert INS not in result.detail


def test_implicit_tls(pki: Pki) -> None:
    with mss_smtp(pki, implicit=True) as inbox:
        send(config(pki, inbox.port, security="tls"), item())
    assert len(inbox.mails) == 2


def test_a_5xx_for_one_of_two_recipients_keeps_its_code_and_sends_to_the_other(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        inbox.answers[OTHER] = "550 5.1.1 <eve.martin@test-ci-sis.mssante.fr>: unknown user"
        result = send(config(pki, inbox.port), item(two_professionals()))
    assert [rcpts for _, rcpts, _ in inbox.mails] == [[PS], [PATIENT]]
    assert f"{OTHER} refused 550 5.1.1" in result.detail
    assert "professionals: Message-ID <eai.5." in result.detail
    # the refused recipient's ZAM^Z02 N, SMTPERRORCODE 550, to the route's business_acks
    (zam,) = result.follow_ups
    assert zam.destination == "lab-return" and zam.kind == "business_ack ZAM^Z02"
    segs = zam_segments(zam.payload)
    assert segs["MSH"][0].split("|")[8] == "ZAM^Z02^ZAM_Z01"
    assert segs["OBX"][0].split("|")[5].startswith("N^")
    assert f"^^X.400^{OTHER}" in segs["OBX"][1]
    assert segs["ERR"][0].split("|")[5].startswith("550^") and "SMTPERRORCODE" in segs["ERR"][0]


def test_no_zam_when_no_receipt_was_asked(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        inbox.answers[OTHER] = "550 5.1.1 unknown user"
        result = send(config(pki, inbox.port), item(two_professionals(), ACK_RECEPTION="N"))
    assert result.follow_ups == ()


def test_a_combination_outside_the_matrix_is_dead_with_a_zam_n_per_recipient(pki: Pki) -> None:
    with pytest.raises(PermanentDeliveryError, match="regles-gestion-mssante") as caught:
        send(config(pki, free_port()), item(DESTMSSANTEPAT="N"))
    zams = caught.value.follow_ups
    assert len(zams) == 1  # the professional; the patient was not a recipient (PAT=N)
    segs = zam_segments(zams[0].payload)
    assert f"^^X.400^{PS}" in segs["OBX"][1] and "regles-gestion-mssante" in segs["ERR"][0]


def test_a_4xx_for_one_recipient_sends_to_nobody_and_is_retried(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        inbox.answers[OTHER] = "451 4.3.0 mailbox busy, try later"
        cfg = config(pki, inbox.port)
        with pytest.raises(TransientDeliveryError, match="451 4.3.0"):
            send(cfg, item(two_professionals()))
        assert inbox.mails == []
        del inbox.answers[OTHER]
        send(cfg, item(two_professionals(), attempts=2))
    assert [rcpts for _, rcpts, _ in inbox.mails] == [[PS, OTHER], [PATIENT]]


def test_every_recipient_refused_is_a_dead_letter_with_the_codes(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        inbox.answers[PS] = "550 5.1.1 unknown user"
        inbox.answers[PATIENT] = f"550 5.1.1 <{PATIENT}> unknown"
        with pytest.raises(PermanentDeliveryError, match="every recipient refused") as caught:
            send(config(pki, inbox.port), item())
    assert inbox.mails == []
    text = str(caught.value)
    assert "550 5.1.1" in text and "the patient mailbox refused" in text
    assert INS not in text
    assert [z.kind for z in caught.value.follow_ups] == ["business_ack ZAM^Z02"] * 2


def test_a_data_4xx_is_retried_a_data_5xx_is_dead(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        inbox.data_answer = "452 4.3.1 insufficient storage"
        with pytest.raises(TransientDeliveryError, match="452"):
            send(config(pki, inbox.port), item())
        inbox.data_answer = "554 5.6.0 content refused"
        with pytest.raises(PermanentDeliveryError, match="554"):
            send(config(pki, inbox.port), item())


def test_without_client_certificate_the_tls_failure_is_retried(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        with pytest.raises(TransientDeliveryError, match="MSSanté SMTP"):
            send(config(pki, inbox.port, cert=False), item())
    assert inbox.mails == []


def test_a_server_certificate_of_another_ca_is_refused_and_retried(
    pki: Pki, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other")
    with mss_smtp(other) as inbox:
        with pytest.raises(TransientDeliveryError, match="TLS failure|certificate"):
            send(config(pki, inbox.port), item())


def test_a_refused_connection_is_retried(pki: Pki) -> None:
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        send(config(pki, free_port()), item())


def test_smtp_auth_when_configured(pki: Pki) -> None:
    with mss_smtp(pki, login=("bal-labo", "s3cret")) as inbox:
        with pytest.raises(TransientDeliveryError):  # AUTH required: no mail without it
            send(config(pki, inbox.port), item())
        with pytest.raises(TransientDeliveryError, match="authentication refused"):
            send(config(pki, inbox.port, user="bal-labo", password="wrong"), item())
        assert inbox.mails == []
        send(config(pki, inbox.port, user="bal-labo", password="s3cret"), item())
    assert len(inbox.mails) == 2
