"""The parts of an MSSanté delivery already done, written in an attempt's detail and read back."""

from __future__ import annotations

from connectors.mssante._mail import Mail
from connectors.mssante._progress import Sent, progress_markers, read_progress
from connectors.mssante._smtp import Refusal

INS = "279035121518989"
PS, OTHER = "adam.hoda@test-ci-sis.mssante.fr", "eve.martin@test-ci-sis.mssante.fr"
PATIENT = f"{INS}@patient.mssante.fr"
MAILS = (
    Mail("professionals", (PS, OTHER), "<eai.5.aa@labo.mssante.fr>", b""),
    Mail("patient", (PATIENT,), "<eai.5.bb@labo.mssante.fr>", b""),
)
PROS = Sent(
    "professionals",
    "<eai.5.aa@labo.mssante.fr>",
    "professionals: Message-ID <eai.5.aa@labo.mssante.fr> to 1 recipient(s)",
    True,
    (Refusal(OTHER, 550, "5.1.1 unknown user"),),
    (PS,),
)


def test_a_part_done_reads_back_from_the_detail_it_ends() -> None:
    detail = "#1 retrying: MSSanté SMTP RCPT: 451 4.3.0 later" + progress_markers([PROS], MAILS)
    assert read_progress(["#0 nothing", detail], MAILS) == {"professionals": PROS}


def test_the_patient_part_never_carries_the_ins() -> None:
    refused = Sent(
        "patient",
        "<eai.5.bb@labo.mssante.fr>",
        "patient: the patient mailbox refused 550 <INS>",
        False,
        (Refusal(PATIENT, 550, f"5.1.1 <{PATIENT}> unknown"),),
    )
    detail = progress_markers([refused], MAILS)
    assert INS not in detail
    back = read_progress([detail], MAILS)["patient"]
    assert back.refused == (Refusal(PATIENT, 550, "5.1.1 <<INS>@patient.mssante.fr> unknown"),)
    assert not back.delivered and back.accepted == ()


def test_a_later_attempt_wins_and_a_bad_marker_is_ignored() -> None:
    later = Sent("professionals", "<eai.5.cc@labo.mssante.fr>", "again", True, (), (PS, OTHER))
    details = [
        progress_markers([PROS], MAILS),
        progress_markers([later], MAILS),
        '[mss-sent {"part": "patient", "mid": "<x>", "ok": true, "text": "", "acc": [3], '
        '"ref": []}] [mss-sent {not json]',
    ]
    assert read_progress(details, MAILS) == {"professionals": later}


def test_a_part_the_mails_no_longer_have_is_sent_again() -> None:
    detail = progress_markers([PROS], MAILS)
    assert read_progress([detail], MAILS[1:]) == {}
