"""``split_file`` and ACK summaries (no I/O)."""

from __future__ import annotations

import pytest

from connectors.mllp._ack import AckError, summarise_ack
from connectors.mllp.client import split_file
from eai.errors import InputError
from tests._paths import HL7V2


def test_one_message_file() -> None:
    data = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
    [one] = split_file(data)
    assert one.startswith(b"MSH|") and one.endswith(b"\r")
    assert b"\n" not in one
    assert one.count(b"\r") == 6


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"])
def test_several_messages_and_blank_lines(eol: bytes) -> None:
    data = eol.join(
        [b"", b"MSH|^~\\&|A|1", b"PID|1", b"", b"  ", b"MSH|^~\\&|A|2", b"PV1|1", b"", b""]
    )
    assert split_file(data) == [b"MSH|^~\\&|A|1\rPID|1\r", b"MSH|^~\\&|A|2\rPV1|1\r"]


def test_bom_skipped() -> None:
    assert split_file(b"\xef\xbb\xbfMSH|^~\\&|A\n") == [b"MSH|^~\\&|A\r"]


def test_empty_file() -> None:
    assert split_file(b"\n\n") == []


def test_text_before_first_msh_refused() -> None:
    with pytest.raises(InputError):
        split_file(b"hello\nMSH|^~\\&|A\n")


def test_summarise_ack() -> None:
    raw = (
        b"MSH|^~\\&|B|F|A|E|20240306||ACK^A01^ACK|X1|P|2.5\rMSA|AR|C-9\r"
        b"ERR|||207^Application internal error^HL70357|E||||sending facility not allowed\r"
    )
    ack = summarise_ack(raw)
    assert (ack.code, ack.control_id, ack.raw) == ("AR", "C-9", raw)
    assert ack.text == "sending facility not allowed"
    assert not ack.accepted


def test_summarise_ack_msa3_text_first() -> None:
    ack = summarise_ack(b"MSH|^~\\&|B|F|A|E|2024||ACK|X1|P|2.3\rMSA|AE|C-9|busy, retry\r")
    assert (ack.code, ack.text) == ("AE", "busy, retry")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"nothing",
        b"MSH|^~\\&|B|F|A|E|2024||ACK|X1|P|2.5\r",
        b"MSH|^~\\&|B|F|A|E|2024||ACK|X1|P|2.5\rMSA|ZZ|1\r",
    ],
)
def test_not_an_ack(raw: bytes) -> None:
    with pytest.raises(AckError):
        summarise_ack(raw)


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (b"ERR|^^^207&Application error&HL70357\r", "Application error"),  # v2.3: ERR-1.4.2
        (b"ERR||PID^1^3|101^Required field missing^HL70357|E\r", "Required field missing"),
        (b"ERR||||E||||  \r", ""),  # a blank ERR-8 is the text: nothing
        (b"ERR||||E||||tab\there\r", "tab here"),  # not printable: a space
        (b"", ""),
    ],
)
def test_summarise_ack_text_from_err(err: bytes, text: str) -> None:
    raw = b"MSH|^~\\&|B|F|A|E|2024||ACK|X1|P|2.5\rMSA|AE|C-9\r" + err
    assert summarise_ack(raw).text == text
