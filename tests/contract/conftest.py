"""The destination contract suite's registration list: one peer per destination type.

A new destination joins the suite by adding its :class:`tests.contract._peer.ContractPeer`
here; ``test_every_registered_destination_has_a_peer`` fails until it does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests._pki import Pki, make_pki
from tests.contract._dicom import DicomContractPeer
from tests.contract._dmp import DmpContractPeer
from tests.contract._fhir import FhirContractPeer
from tests.contract._mllp import MllpContractPeer
from tests.contract._mssante import MssanteContractPeer
from tests.contract._peer import ContractPeer

PEERS: dict[str, Callable[[], ContractPeer]] = {
    "mllp": MllpContractPeer,
    "dicom": DicomContractPeer,
    "dmp": DmpContractPeer,
    "fhir": FhirContractPeer,
    "mssante": MssanteContractPeer,
}
"""Destination type -> its contract peer (the registration list)."""


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest) -> Iterator[ContractPeer]:
    """Each registered destination's peer, not started (a test starts it, with or
    without TLS); stopped after the test."""
    made = PEERS[request.param]()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
