"""The parts of an MSSanté delivery already done, written in an attempt's detail and read back."""

from __future__ import annotations

from connectors.mssante._mail import Mail
from connectors.mssante._progress import Sent, progress_markers, read_progress
from connectors.mssante._smtp import Refusal, Submission

INS = "279035121518989"
PS, OTHER = "adam.hoda@test-ci-sis.mssante.fr", "eve.martin@test-ci-sis.mssante.fr"
PATIENT = f"{INS}@patient.mssante.fr"
MAILS = (
    Mail("professionals", (PS, OTHER), "<eai.5.aa@labo.mssante.fr>", b""),
    Mail("patient", (PATIENT,), "<eai.5.bb@labo.mssante.fr>", b""),
)
TAKEN = Submission((PS,), (Refusal(OTHER, 550, f"5.1.1 <{OTHER}>: unknown user"),), True)
PROS = Sent("professionals", "<eai.5.aa@labo.mssante.fr>", "text", TAKEN)


def test_a_part_done_reads_back_from_the_detail_it_ends_without_any_address() -> None:
    detail = "#1 retrying: MSSanté SMTP RCPT: 451 4.3.0 later" + progress_markers([PROS], MAILS)
    assert PS not in detail and OTHER not in detail and "<<rcpt 1>>: unknown user" in detail
    assert "[mss-sent Message-ID <eai.5.aa@labo.mssante.fr> {" in detail  # as receipts look
    assert read_progress(["#0 nothing", detail], MAILS) == {
        "professionals": ("<eai.5.aa@labo.mssante.fr>", TAKEN)
    }


def test_the_patient_part_never_carries_the_ins() -> None:
    refused = Submission((), (Refusal(PATIENT, 550, f"5.1.1 {INS} unknown"),), False)
    detail = progress_markers([Sent("patient", "<eai.5.bb@x>", "t", refused)], MAILS)
    assert INS not in detail
    mid, back = read_progress([detail], MAILS)["patient"]
    assert mid == "<eai.5.bb@x>" and not back.dsn and back.accepted == ()
    assert back.refused == (Refusal(PATIENT, 550, "5.1.1 <INS> unknown"),)


def test_a_later_attempt_wins_and_a_bad_marker_is_ignored() -> None:
    again = Submission((PS, OTHER), (), False)
    later = Sent("professionals", "<eai.5.cc@labo.mssante.fr>", "again", again)
    details = [
        progress_markers([PROS], MAILS),
        progress_markers([later], MAILS),
        '[mss-sent {"part": "patient", "mid": "<x>", "dsn": true, "acc": [3], "ref": []}]'
        " [mss-sent {not json]",
    ]
    assert read_progress(details, MAILS) == {"professionals": ("<eai.5.cc@labo.mssante.fr>", again)}


def test_a_part_the_mails_no_longer_have_is_sent_again() -> None:
    detail = progress_markers([PROS], MAILS)
    assert read_progress([detail], MAILS[1:]) == {}
