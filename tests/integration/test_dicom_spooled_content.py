"""DICOM content of spooled instances: routing on tags and calling AE, coercion marks, and the
forwarder reading the decrypted dataset and refusing a tampered file.

Touches: files (spooled instances in tmp_path).
"""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dicom_router._store_scu import StoreScu, _dataset_offset
from dicom_router.config import Coercion
from dicom_router.content import parse_dicom
from dicom_router.forward import DicomDestinationConfig
from dicom_router.reference import InstanceRef
from eai.config import Route, route_model
from eai.errors import (
    InputError,
    PermanentDeliveryError,
)
from eai.routing import evaluate
from tests._dicom_spool import spooled_ct


def _ops(*data: dict[str, Any]) -> list[Coercion]:
    return [Coercion.model_validate(d) for d in data]


def test_content_type_routes_on_tags_and_calling_ae(tmp_path: Path) -> None:
    ref, data = spooled_ct(tmp_path, {"Modality": "CT", "PatientID": "1CT1"})
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    content = parse_dicom(ref.to_json(), None)
    msg = content.routable
    assert msg.header.message_type == "DICOM^CT"
    assert msg.header.sending_application == "CT1"
    assert content.patient.ordering_key == ds.StudyInstanceUID
    assert content.patient.identifiers == ("1CT1",)
    assert content.control_id == ds.SOPInstanceUID
    assert msg.get("Modality") == "CT"
    assert msg.get("(0008,0070)") == ds.Manufacturer  # read from the spool file
    assert msg.get("ImageType") == "\\".join(ds.ImageType)
    assert msg.get("PV1-2") == "" and msg.get("(7FE0,0010)") == ""

    def route(when: dict[str, Any], coerce: list[dict[str, Any]] | None = None) -> Route:
        return route_model().model_validate(
            {"name": "r", "from": ["img"], "to": ["pacs"], "when": when, "coerce": coerce or []}
        )

    assert evaluate([route({"tag": "Modality", "in": ["CT", "MR"]})], "img", msg).routes
    assert not evaluate([route({"tag": "Modality", "equals": "MR"})], "img", msg).routes
    assert evaluate([route({"calling_ae": ["CT1"]})], "img", msg).routes
    assert not evaluate([route({"calling_ae": ["CT2"]})], "img", msg).routes
    assert evaluate([route({"tag": "(0008,0070)", "matches": "GE"})], "img", msg).routes
    assert content.for_route is not None
    assert content.for_route(route({"calling_ae": ["CT1"]})) is None
    marked = content.for_route(route({"calling_ae": ["CT1"]}, [{"remove": "PatientComments"}]))
    assert marked is not None and InstanceRef.from_json(marked).coerce[0].tag == 0x00104000
    with pytest.raises(InputError):
        parse_dicom(json.dumps({**json.loads(ref.to_json()), "spool": "../x"}).encode(), None)


def test_forwarder_sends_the_decrypted_dataset_and_refuses_a_tampered_file(
    tmp_path: Path,
) -> None:
    ref, data = spooled_ct(tmp_path)
    # What the forwarding process does with a delivery (dicom_router._forward_child).
    scu = StoreScu(DicomDestinationConfig(name="pacs", ae_title="PACS", host="127.0.0.1", port=104))
    body = scu.load(ref)
    assert isinstance(body, memoryview)
    assert bytes(body) == data[_dataset_offset(data) :] and data.endswith(bytes(body))
    marked = scu.load(ref.with_coercion(_ops({"set": "InstitutionName", "value": "A"})))
    assert isinstance(marked, pydicom.Dataset) and marked.InstitutionName == "A"
    sealed = ref.path.read_bytes()
    ref.path.write_bytes(sealed[:-5000] + bytes([sealed[-5000] ^ 0x40]) + sealed[-4999:])
    for tampered in (ref, ref.with_coercion(_ops({"remove": "PatientComments"}))):
        with pytest.raises(PermanentDeliveryError, match=f"spool file {ref.spool} cannot be decr"):
            scu.load(tampered)
    ref.path.unlink()
    with pytest.raises(PermanentDeliveryError, match="is gone"):
        scu.load(ref)
