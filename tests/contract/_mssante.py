"""The MSSanté destination's contract peer: an SMTP server with STARTTLS and a required
client certificate (aiosmtpd, ``tests._mss_smtp``), answering by mode at RCPT.

Touches: network (127.0.0.1: the SMTP server, an MLLP sender to the engine), files (its
PKI under the test's work directory).

Each message fed is the national CR-BIO ORU with its own MSH-10, per patient its own INS
(PID-3 and the CDA's recordTarget, a valid NIR key), flagged for the professionals only
(routing matrix row 2: ``INVISIBLE_PATIENT`` Y, ``DESTMSSANTEPAT`` N) and with its
control id as the mail body (``CORPSMAIL_PS``): the peer reports mails by their body.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests._cisis import ORU, build, edit, segments
from tests._mss_smtp import MssInbox, mss_smtp
from tests._pki import Pki, make_pki
from tests.contract._peer import Mode, client_tls, feed_over_mllp, mllp_listener

__all__ = ["MssanteContractPeer"]

_FLAGS = {"INVISIBLE_PATIENT": "Y", "DESTMSSANTEPAT": "N"}


def _ins(patient: str) -> str:
    nir = "2790351215" + f"{100 + sum(map(ord, patient)) % 900:03d}"
    return nir + f"{97 - int(nir) % 97:02d}"


def _oru(control_id: str, patient: str) -> bytes:
    ins = _ins(patient)
    segs = []
    for seg in segments(ORU):
        fields = seg.split("|")
        code = fields[3].split("^")[0] if seg.startswith("OBX|") else ""
        if code in _FLAGS:
            fields[5] = f"{_FLAGS[code]}^^expandedYes-NoIndicator"
        elif code == "CORPSMAIL_PS":
            fields[5] = "^TEXT^^Base64^" + base64.b64encode(control_id.encode()).decode()
        elif seg.startswith("OBX|1|ED|"):
            parts = fields[5].split("^")
            cda = base64.b64decode(parts[4] + "=" * (-len(parts[4]) % 4))
            cda = cda.replace(b'extension="279035121518989"', f'extension="{ins}"'.encode())
            parts[4] = base64.b64encode(cda).decode("ascii")
            fields[5] = "^".join(parts)
        segs.append("|".join(fields))
    message = edit(build(segs), "MSH", 10, control_id)
    pid3 = next(s for s in segments(message) if s.startswith("PID|")).split("|")[3]
    return edit(message, "PID", 3, pid3.replace("279035121518989", ins, 1))


def _report(patient: str, i: int) -> tuple[str, str, bytes]:
    cid = f"M{patient}-{i:03d}"
    return cid, cid, _oru(cid, patient)


class MssanteContractPeer:
    destination_type = "mssante"
    permanent_reason = "5.7.1 MSS-REFUSED-4242"

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._inbox: MssInbox | None = None
        self._pki: Pki | None = None
        self._answer: str | None = None
        self._delay = 0.0

    def behave(self, mode: Mode, delay: float = 0.0) -> None:
        self._answer = {
            "accept": None,
            "transient": "451 4.3.0 mailbox busy, try later",
            "permanent": f"550 {self.permanent_reason} recipient refused",
        }[mode]
        self._delay = delay
        if self._inbox is not None:
            self._inbox.default_answer, self._inbox.delay = self._answer, delay

    def start(self, work: Path, tls: Pki | None = None) -> None:
        self._pki = tls or make_pki(work / "mss-pki")
        self._inbox = self._stack.enter_context(mss_smtp(self._pki))
        self._inbox.default_answer, self._inbox.delay = self._answer, self._delay

    def stop(self) -> None:
        self._stack.close()
        self._inbox = None

    @property
    def _live(self) -> MssInbox:
        assert self._inbox is not None, "peer not started"
        return self._inbox

    def accepted(self) -> list[str]:
        out = []
        for _, _, mail in list(self._live.mails):
            body = mail.get_body(("plain",))
            out.append(str(body.get_content()).strip() if body is not None else "")
        return out

    def attempts(self) -> int:
        return self._live.rcpt_calls

    def destination(self) -> dict[str, Any]:
        assert self._pki is not None, "peer not started"
        return {
            "type": "mssante",
            "host": "127.0.0.1",
            "port": self._live.port,
            "tls": client_tls(self._pki),
            "sender": "labo-auto@labo.mssante.fr",
            "source_id": "1.2.250.1.999.1.1",
        }

    def timeouts(self, connect: float, response: float) -> dict[str, Any]:
        return {"connect_timeout": f"{connect}s", "response_timeout": f"{response}s"}

    def listener(self, port: int) -> dict[str, Any]:
        return mllp_listener(port)

    def feed(
        self, port: int, work: Path, patients: Sequence[str], each: int
    ) -> dict[str, list[str]]:
        return feed_over_mllp(port, patients, each, _report)
