"""The DMP's value sets: every national CDA (CR-BIO, FRCP, CR-IMG, TLM level 1) is published
to the stand-in with the classCode and formatCode of the ANS tables (ASS_X04, ASS_A11,
ASS_A12), which the stand-in checks with its own copy of JDV_J57 and ASS_X04; a classCode
that does not go with its typeCode, one outside JDV_J57 and a facility type outside
TRE_R02 are refused by the stand-in with XDSRegistryMetadataError."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.dmp.config import DmpDestinationConfig
from connectors.dmp.destination import DmpDestination, load_signing_identity, prepare
from eai.messages import MessageFacts, OutboxItem
from eai.net import TlsClientConfig
from standins.dmp import DmpStandin
from tests._cisis import mdm_with
from tests._national import dmp_standin
from tests._paths import CDA, HL7V2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
CLASS_SCHEME = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
FORMAT_SCHEME = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"


@pytest.fixture
def dmp(tmp_path: Path) -> Iterator[tuple[DmpStandin, DmpDestinationConfig]]:
    with dmp_standin(tmp_path) as peer:
        pki, standin = peer.pki, peer.standin
        seal_cert, seal_key = peer.seal.cert, peer.seal.key
        yield (
            standin,
            DmpDestinationConfig(
                name="dmp",
                url=standin.url,
                tls=TlsClientConfig(ca=pki.ca, cert=pki.client_cert, key=pki.client_key),
                sign_cert=seal_cert,
                sign_key=seal_key,
                source_id="1.2.250.1.999.1.1",
                structure_id="1120459876",
                activity_sector="SA25^1.2.250.1.71.4.2.4",
                homologation_id="HOMOL-TEST",
            ),
        )


def item(payload: bytes, delivery_id: int = 1) -> OutboxItem:
    return OutboxItem(
        delivery_id,
        delivery_id,
        "dmp",
        payload,
        "015",
        "k",
        facts=MessageFacts(flags={"DESTDMP": "Y"}, ins=INS, ins_oid=INS_OID),
    )


async def _send(config: DmpDestinationConfig, it: OutboxItem) -> None:
    destination = DmpDestination(config)
    await destination.start()
    try:
        await destination.send(it)
    finally:
        await destination.close()


def _coded(envelope: bytes, scheme: str) -> list[tuple[str, str]]:
    text = envelope.decode("utf-8")
    found = []
    for match in re.finditer(
        rf'classificationScheme="{scheme}"[^>]*nodeRepresentation="([^"]*)">'
        r".*?<rim:Value>([^<]*)</rim:Value>",
        text,
        re.S,
    ):
        found.append((match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize(
    ("payload", "class_code", "format_code"),
    [
        (
            (HL7V2 / "oru_r01_crbio_init.hl7").read_bytes(),
            "10",
            ("urn:ihe:lab:xd-lab:2008", "1.3.6.1.4.1.19376.1.2.3"),
        ),
        (
            mdm_with((CDA / "CANCER-FRCP_2022.01_Appareil.xml").read_bytes()),
            "10",
            ("urn:asip:ci-sis:frcp:2011", "1.2.250.1.213.1.1.4.2.282"),
        ),
        (
            mdm_with((CDA / "IMG_CR_IMG_2024.01.xml").read_bytes()),
            "31",
            ("urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", "1.3.6.1.4.1.19376.1.2.3"),
        ),
        (
            mdm_with((CDA / "TLM-CR_2022.01.xml").read_bytes()),
            "10",
            ("urn:ihe:iti:xds-sd:pdf:2008", "1.3.6.1.4.1.19376.1.2.3"),
        ),
    ],
    ids=["crbio", "frcp", "crimg", "tlm"],
)
def test_each_national_document_is_published_with_its_ans_codes(
    dmp: tuple[DmpStandin, DmpDestinationConfig],
    payload: bytes,
    class_code: str,
    format_code: tuple[str, str],
) -> None:
    standin, config = dmp
    asyncio.run(_send(config, item(payload)))
    (published,) = standin.published
    assert published.errors == []
    assert _coded(published.envelope, CLASS_SCHEME)[0] == (class_code, "1.2.250.1.213.1.1.4.1")
    assert _coded(published.envelope, FORMAT_SCHEME)[0] == format_code


@pytest.mark.parametrize(
    ("pattern", "replacement", "said"),
    [
        (
            rf'(classificationScheme="{CLASS_SCHEME}"[^>]*nodeRepresentation=")10"',
            r'\g<1>11"',
            b"classCode 11 does not go with typeCode 11502-2",
        ),
        (
            rf'(classificationScheme="{CLASS_SCHEME}"[^>]*nodeRepresentation=")10"',
            r'\g<1>77"',
            b"classCode 77@1.2.250.1.213.1.1.4.1 is not in JDV_J57-ClassCode-DMP",
        ),
        (r'nodeRepresentation="SA25"', 'nodeRepresentation="XX25"', b"XX25"),
    ],
    ids=["class-for-type", "class-not-in-j57", "facility-sector"],
)
def test_the_standin_refuses_codes_outside_the_dmp_value_sets(
    dmp: tuple[DmpStandin, DmpDestinationConfig], pattern: str, replacement: str, said: bytes
) -> None:
    standin, config = dmp
    signer = load_signing_identity(config.sign_cert, config.sign_key)
    message = prepare(config, signer, item((HL7V2 / "oru_r01_crbio_init.hl7").read_bytes()))
    tampered = re.sub(pattern.encode(), replacement.encode(), message.body, count=1)
    assert tampered != message.body
    status, _, answer = standin.handle(message.content_type, tampered)
    assert status == 200
    assert b"XDSRegistryMetadataError" in answer and said in answer
