"""examples/national-routes.yaml's MSSanté destination end to end: the national CR-BIO ORU
over MLLP -> two mails over STARTTLS with a client certificate (the professional of PRT RCT,
the patient's mailbox from the qualified INS), the X-MSS headers, an IHE_XDM.zip whose
METADATA.XML validates and describes the document; without a qualified identity a mail for
the patient is held while one for professionals only goes with X-MSS-INS: N."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from eai import hl7
from eai.cli import cli
from standins.net import free_port
from tests._cisis import ORU, build, edit, segments
from tests._mllp import MllpSender, msa
from tests._mss_smtp import mss_smtp
from tests._national import copy_example, eai_check, set_environment, write_seal
from tests._paths import REPO
from tests._pki import make_pki
from tests._proc import EaiProcess, listener_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LCM_XSD = REPO / "tests" / "xsd" / "xds" / "ebRS30" / "lcm.xsd"
NS = {"rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"}
SENDER = "labo-auto@labo.mssante.fr"
PS = "adam.hoda@test-ci-sis.mssante.fr"
INS = "279035121518989"


def flagged(payload: bytes, **flags: str) -> bytes:
    segs = segments(payload)
    for i, seg in enumerate(segs):
        fields = seg.split("|")
        if seg.startswith("OBX|") and fields[3].split("^")[0] in flags:
            fields[5] = f"{flags[fields[3].split('^')[0]]}^^expandedYes-NoIndicator"
            segs[i] = "|".join(fields)
    return build(segs)


def unqualified(payload: bytes, control_id: str, **flags: str) -> bytes:
    """The ORU with a local patient id only (no INS) and PID-32 PROV."""
    message = edit(payload, "MSH", 10, control_id)
    message = edit(message, "PID", 3, "LOC-778^^^LABO&1.2.250.1.999.1.9&ISO^PI")
    message = edit(message, "PID", 32, "PROV")
    return flagged(message, **flags)


def deliveries(config: Path) -> list[dict]:
    listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    return [
        {**d, "control_id": m.get("control_id")}
        for m in json.loads(listed.output)
        for d in m["deliveries"]
    ]


def test_the_national_example_mails_the_crbio_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    port = listener_port()
    config = copy_example(tmp_path, monkeypatch)
    seal = write_seal(tmp_path)  # the example's DMP destination needs its seal to start
    with mss_smtp(pki) as inbox:
        set_environment(
            monkeypatch,
            pki,
            seal,
            port=port,
            return_port=free_port(),
            dmp_url=f"https://127.0.0.1:{free_port()}/repository",
            MSS_SMTP_HOST="127.0.0.1",
            MSS_SMTP_PORT=str(inbox.port),
            MSS_SENDER=SENDER,
        )
        eai_check(config)
        with EaiProcess(config, port, tmp_path / "eai.log") as eng:
            eng.start()
            with MllpSender(port) as sender:
                assert msa(sender.exchange(ORU))[0] == "AA"
                ps_only = unqualified(ORU, "016", INVISIBLE_PATIENT="Y", DESTMSSANTEPAT="N")
                assert msa(sender.exchange(ps_only))[0] == "AA"
                for_patient = unqualified(ORU, "017")
                assert msa(sender.exchange(for_patient))[0] == "AA"
            wait_until(lambda: len(inbox.mails) >= 3, "three mails", eng)
            rows = wait_until(
                lambda: (
                    [
                        d
                        for d in deliveries(config)
                        if d["destination"] == "mssante" and d["status"] in ("delivered", "held")
                    ]
                    if len(
                        [
                            d
                            for d in deliveries(config)
                            if d["destination"] == "mssante"
                            and d["status"] in ("delivered", "held")
                        ]
                    )
                    == 3
                    else None
                ),
                "three mssante deliveries settled",
                eng,
            )
    statuses = sorted(d["status"] for d in rows)
    assert statuses == ["delivered", "delivered", "held"]
    first, second, third = inbox.mails[:3]
    assert [first[1], second[1]] == [[PS], [f"{INS}@patient.mssante.fr"]]
    assert all(sender == SENDER for sender, _, _ in inbox.mails)
    mail = first[2]
    assert (mail["From"], mail["To"], mail["Reply-To"]) == (SENDER, PS, PS)
    assert mail["X-MSS-CODECDA"] == "11502-2" and mail["X-MSS-INS"] == "O"
    assert mail["X-MSS-NIL"] == "EAI-REGION-1"
    assert mail["Disposition-Notification-To"] == SENDER
    assert mail["Message-ID"].startswith("<eai.")
    # the third mail: the unqualified message for professionals only, no patient anywhere
    assert third[1] == [PS] and third[2]["X-MSS-INS"] == "N"
    zipped = next(p for p in mail.iter_attachments() if p.get_filename() == "IHE_XDM.zip")
    archive = zipfile.ZipFile(io.BytesIO(zipped.get_content()))
    metadata = etree.fromstring(archive.read("IHE_XDM/SUBSET01/METADATA.XML"))
    schema = etree.XMLSchema(etree.parse(str(LCM_XSD)))
    assert schema.validate(metadata), schema.error_log
    document = hl7.embedded_documents(hl7.parse(ORU))[0].data
    assert archive.read("IHE_XDM/SUBSET01/DOC0001.XML") == document

    def slot(name: str) -> list[str]:
        path = f"//rim:ExtrinsicObject/rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()"
        return [str(v) for v in metadata.xpath(path, namespaces=NS)]

    assert slot("hash") == [hashlib.sha1(document).hexdigest()]
    assert slot("size") == [str(len(document))]
    assert slot("URI") == ["DOC0001.XML"]
    assert INS not in (tmp_path / "eai.log").read_text(errors="replace")
