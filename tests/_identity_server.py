"""Patients of the identity-server stand-in for the tests, and a client over a fake transport.

The traits are the national PAM FR fixture's (PAT-TROIS) and made-up ones around the INS
examples of ``shared/docs-fr.md``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import httpx

from eai.config import IdentityServerConfig
from identity.pdqm import IdentityServerClient
from standins.identity import StandinServer, StandinService

REGIONAL = "urn:oid:1.2.250.1.999.1.1"
CHU_X = "urn:oid:1.2.250.1.999.2.1"  # CHU-X's local patient ids (IPP)
CH_Y = "urn:oid:1.2.250.1.999.2.2"
TEST_OID = "1.2.250.1.213.1.4.10"
NIR_OID = "1.2.250.1.213.1.4.8"
BASE = "http://identity.test/fhir"

PATIENTS: list[dict[str, Any]] = [
    {
        "id": "R0001",
        "regional_id": "R0001",
        "ins": "279035121518989",
        "ins_oid": TEST_OID,
        "birth_name": "PAT-TROIS",
        "given": ["DOMINIQUE"],
        "birth_date": "1979-03-28",
        "gender": "female",
        "birth_place": "63220",
        "identifiers": [{"system": CHU_X, "value": "000003"}],
    },
    {
        "id": "R0002",
        "regional_id": "R0002",
        "ins": "162018885045327",
        "ins_oid": NIR_OID,
        "birth_name": "DUPONT-LAJOIE",
        "used_name": "MARTEL",
        "given": ["JEAN", "PIERRE"],
        "birth_date": "1962-01-15",
        "gender": "male",
        "birth_place": "88850",
        "identifiers": [{"system": CHU_X, "value": "000010"}, {"system": CH_Y, "value": "Y-77"}],
    },
    {
        "id": "R0003",
        "regional_id": "R0003",
        "birth_name": "MARTIN",
        "given": ["MARIE"],
        "birth_date": "1990-05-05",
        "gender": "female",
        "birth_place": "75056",
    },
    {
        "id": "R0004",
        "regional_id": "R0004",
        "birth_name": "MARTIN",
        "given": ["MARIE", "LOUISE"],
        "birth_date": "1990-05-05",
        "gender": "female",
        "birth_place": "69123",
    },
    {
        "id": "R0005",
        "regional_id": "R0005",
        "ins": "146026322000196",
        "ins_oid": NIR_OID,
        "birth_name": "LEGRAND",
        "given": ["PAUL"],
        "birth_date": "1946-02-10",
        "gender": "male",
        "birth_place": "63220",
        "active": False,
        "replaced_by": "R0001",
    },
]

SECRETS = ("PAT-TROIS", "DOMINIQUE", "279035121518989", "DUPONT", "162018885045327", "000003")
"""Values that must never appear in a log line."""


def service(**kwargs: Any) -> StandinService:
    return StandinService(PATIENTS, REGIONAL, **kwargs)


def transport(svc: StandinService) -> httpx.MockTransport:
    """The stand-in behind ``httpx.MockTransport``: no socket."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = svc.handle(
            request.method,
            request.url.raw_path.decode("ascii"),
            {k.lower(): v for k, v in request.headers.items()},
            request.content,
        )
        return httpx.Response(
            answer.status,
            content=answer.encode(),
            headers={"content-type": "application/fhir+json"},
        )

    return httpx.MockTransport(handle)


def config(url: str = BASE, **overrides: Any) -> IdentityServerConfig:
    return IdentityServerConfig.model_validate(
        {"url": url, "regional_id_system": REGIONAL, **overrides}
    )


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def mock_client(
    svc: StandinService, clock: Clock | None = None, **overrides: Any
) -> IdentityServerClient:
    return IdentityServerClient(
        config(**overrides), transport=transport(svc), clock=clock or Clock()
    )


class StandinThread:
    """The stand-in on 127.0.0.1 in its own thread and event loop, for a running engine:
    ``with StandinThread(service(), port) as s: s.url``; :meth:`stop` then :meth:`start`
    again on the same port simulate an outage (connections refused meanwhile)."""

    def __init__(self, svc: StandinService, port: int) -> None:
        self.service = svc
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: StandinServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.service.base}"

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> StandinThread:
        self._server = StandinServer(self.service, "127.0.0.1", self.port)
        self._call(self._server.start())
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.stop())
            self._server = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> StandinThread:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
