"""DICOM in routes.yaml: listener/destination models, tag predicates, coercion, content type."""

from __future__ import annotations

import json
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dicom_router.coercion import apply_coercion
from dicom_router.config import Coercion, is_uid
from dicom_router.forward import store_verdict
from dicom_router.reference import InstanceRef
from dicom_router.scp import DicomListenerConfig
from eai.config import load_config_text
from eai.errors import (
    ConfigError,
    InputError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from tests._paths import REPO

BASE = """\
engine:
  data_dir: /tmp/eai-test
listeners:
  - name: img
    type: dicom
    ae_title: EAI
    bind: 127.0.0.1:0
    spool_dir: /tmp/eai-test/spool
    allowed_callers:
      - ae_title: CT1
        hosts: [10.0.0.0/24]
destinations:
  - name: pacs
    type: dicom
    ae_title: PACS
    host: 127.0.0.1
    port: 104
routes:
  - name: r1
    from: [img]
    to: [pacs]
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "routes.yaml", {})
    return [str(issue) for issue in info.value.issues]


def with_route(extra: str) -> str:
    return BASE + extra


def test_bundled_example_checks() -> None:
    from click.testing import CliRunner

    from eai.cli import cli

    result = CliRunner().invoke(cli, ["check", "-c", str(REPO / "examples" / "dicom-routes.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok"


def test_base_loads() -> None:
    config = load_config_text(BASE, "routes.yaml", {})
    lst = config.listeners[0]
    assert isinstance(lst, DicomListenerConfig)
    assert lst.caller_allowed("CT1", "10.0.0.7")
    assert not lst.caller_allowed("CT1", "10.0.1.7")
    assert not lst.caller_allowed("CT2", "10.0.0.7")


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ("    ae_title: EAI\n", "    ae_title: 'A\\\\B'\n", "not an AE title"),
        ("        hosts: [10.0.0.0/24]\n", "        hosts: [pacs.example]\n", "not an IP"),
        ("    ae_title: PACS\n", "    ae_title: ''\n", "not an AE title"),
    ],
)
def test_bad_listener_and_destination_fields(change: str, where: str, message: str) -> None:
    found = issues(BASE.replace(change, where, 1))
    assert any(message in f for f in found), found


def test_tag_predicate_is_checked_with_its_position() -> None:
    text = BASE + "    when: {tag: Modalty, in: [CT]}\n"
    (issue,) = issues(text)
    assert (
        issue.startswith("routes.yaml:22:17:")
        and "Modalty" in issue
        and "not a DICOM keyword" in issue
    )
    (issue,) = issues(BASE + "    when: {tag: Modality}\n")
    assert "'tag' needs one of: in, equals, matches, exists" in issue
    (issue,) = issues(BASE + "    when: {tag: Modality, field: PV1-2, equals: CT}\n")
    assert "cannot be tested in one condition" in issue


COERCE = """\
    coerce:
      - {set: InstitutionName, value: CHU-X}
      - set: "(0009,0010)"
        vr: LO
        value: EAI
      - set: "(0009,1001)"
        vr: SH
        value: "750712184"
      - set: OtherPatientIDsSequence
        items:
          - {PatientID: "123", IssuerOfPatientID: CHU-X, TypeOfPatientID: TEXT}
      - {set: IssuerOfPatientID, value: ASIP-SANTE-INS-NIR}
      - {remove: PatientComments}
"""


def test_coercion_loads() -> None:
    config = load_config_text(with_route(COERCE), "routes.yaml", {})
    ops = config.routes[0].coerce
    assert [op.tag for op in ops] == [
        0x00080080,
        0x00090010,
        0x00091001,
        0x00101002,
        0x00100021,
        0x00104000,
    ]
    assert ops[3].resolved_vr == "SQ" and len(ops[3].item_ops[0]) == 3


@pytest.mark.parametrize(
    ("op", "line", "message"),
    [
        ("{set: InstitutionNme, value: X}", 23, "not a DICOM keyword"),
        ("{set: '(0009,1001)', value: X}", 23, "private tag: give its 'vr'"),
        ("{set: InstitutionName, vr: SH, value: X}", 23, "has VR LO in the DICOM dictionary"),
        ("{set: Rows, value: abc}", 23, "expected an integer"),
        ("{set: InstitutionName, value: Hôpital}", 23, "ASCII"),
        ("{set: InstitutionName}", 23, "needs a 'value'"),
        ("{set: Modality, value: ct}", 23, "code strings"),
        ("{set: SOPInstanceUID, value: ../../x}", 23, "not a UID"),
        ("{set: OtherPatientIDsSequence, value: x}", 23, "give 'items'"),
        ("{set: OtherPatientIDsSequence, items: [{PatientIDD: x}]}", 23, "items[0].PatientIDD"),
        ("{remove: PatientComments, value: x}", 23, "'remove' takes no 'value'"),
        ("{set: Modality, remove: Modality}", 23, "exactly one of 'set' or 'remove'"),
        ("{set: '(0002,0010)', value: x}", 23, "file meta"),
        ("{set: '(0009,0010)', vr: SH, value: x}", 23, "private creator"),
    ],
)
def test_coercion_errors_point_at_the_operation(op: str, line: int, message: str) -> None:
    found = issues(with_route(f"    coerce:\n      - {op}\n"))
    assert len(found) == 1, found
    assert found[0].startswith(f"routes.yaml:{line}:"), found
    assert message in found[0], found
    assert "routes[0].coerce[0]" in found[0], found


def test_coercion_only_on_dicom_routes() -> None:
    text = BASE.replace(
        "listeners:\n",
        "listeners:\n  - {name: adt, type: mllp, bind: '127.0.0.1:0'}\n",
    ).replace("    from: [img]\n", "    from: [img, adt]\n")
    found = issues(text + "    coerce: [{remove: PatientComments}]\n")
    assert any("coerce marks DICOM instances; listener 'adt' is 'mllp'" in f for f in found)


def _ops(*data: dict[str, Any]) -> list[Coercion]:
    return [Coercion.model_validate(d) for d in data]


def test_apply_coercion_sets_and_removes_only_what_it_names() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    before = {e.tag: e for e in pydicom.dcmread(path)}
    ds.PatientComments = "to remove"
    touched = apply_coercion(
        ds,
        _ops(
            {"set": "InstitutionName", "value": "CHU-X 750712184"},
            {"set": "(0009,0010)", "vr": "LO", "value": "EAI ORIGIN"},
            {"set": "(0009,1001)", "vr": "LO", "value": "750712184"},
            {"set": "ImageType", "value": ["DERIVED", "SECONDARY"]},
            {"set": "OtherPatientIDsSequence", "items": [{"PatientID": "123"}]},
            {"remove": "PatientComments"},
        ),
    )
    assert ds.InstitutionName == "CHU-X 750712184"
    assert ds[0x00090010].value == "EAI ORIGIN" and ds[0x00091001].value == "750712184"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.OtherPatientIDsSequence[0].PatientID == "123"
    assert "PatientComments" not in ds
    for tag, elem in before.items():
        if tag not in touched:
            assert ds[tag].value == elem.value


def test_reference_round_trip_and_refusals() -> None:
    ref = InstanceRef(
        "/s",
        "20261123T101500-" + "a" * 32 + ".dcm",
        10,
        "00",
        "1.2",
        "1.2.3",
        "1.2.3.4",
        "1.2.3.5",
        "1.2.840.10008.1.2.1",
        "CT1",
        "127.0.0.1:1",
        {"PatientID": "X"},
        key=b"K" * 32,
    )
    marked = ref.with_coercion(_ops({"set": "InstitutionName", "value": "A"}))
    back = InstanceRef.from_json(marked.to_json())
    assert back == marked and back.coerce[0].tag == 0x00080080 and back.key == b"K" * 32
    assert "X" not in repr(back) and "S0tL" not in repr(back)  # nor the key (base64 of KKK)
    legacy = json.loads(ref.to_json())
    del legacy["key"]
    assert InstanceRef.from_json(json.dumps(legacy).encode()).key is None
    for bad in (
        b"not json",
        b"[]",
        b'{"spool": 1}',
        json.dumps({**json.loads(ref.to_json()), "size": -1}).encode(),
        json.dumps({**json.loads(ref.to_json()), "key": "c2hvcnQ="}).encode(),
        json.dumps({**json.loads(ref.to_json()), "key": 5}).encode(),
    ):
        with pytest.raises(InputError):
            InstanceRef.from_json(bad)


def test_uids() -> None:
    assert is_uid("1.2.840.10008.5.1.4.1.1.2")
    for bad in ("", "1..2", "1.02", "../1.2", "1.2.3a", "1." * 40 + "1"):
        assert not is_uid(bad)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, "ok"),
        (0xB000, "ok"),
        (0x0001, "ok"),
        (0xA700, "transient"),
        (0xA7FF, "transient"),
        (0xA900, "permanent"),
        (0xC000, "permanent"),
        (0x0110, "permanent"),
    ],
)
def test_store_verdicts(status: int, outcome: str) -> None:
    if outcome == "ok":
        assert store_verdict(status, "P@h:1").detail
    else:
        error = TransientDeliveryError if outcome == "transient" else PermanentDeliveryError
        with pytest.raises(error, match=f"0x{status:04X}"):
            store_verdict(status, "P@h:1")
