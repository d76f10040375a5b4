"""The SCP's wire codec (dicom_router._dimse), checked against pynetdicom and pydicom.

What pynetdicom encodes (P-DATA-TF PDUs of DIMSE messages) our parsers read
back; what we encode (responses, A-RELEASE-RP, A-ABORT, File Meta Information)
pynetdicom and pydicom read back with the same values.
"""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dimse_messages import (
    C_ECHO_RQ,
    C_ECHO_RSP,
    C_FIND_RQ,
    C_STORE_RQ,
    C_STORE_RSP,
    DIMSEMessage,
)
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_STORE
from pynetdicom.dsutils import create_file_meta
from pynetdicom.dsutils import encode_file_meta as pynetdicom_file_meta
from pynetdicom.pdu import A_ABORT_RQ, A_RELEASE_RP, P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from dicom_router import _dimse
from dicom_router._dimse import Command, ProtocolError

CT = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"


def pdus_of(message: DIMSEMessage, context_id: int, max_pdu: int) -> list[bytes]:
    return [P_DATA_TF(p).encode() for p in message.encode_msg(context_id, max_pdu)]


def split_pdus(stream: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos < len(stream):
        pdu_type, length = _dimse.parse_pdu_header(stream[pos : pos + 6])
        out.append((pdu_type, stream[pos + 6 : pos + 6 + length]))
        pos += 6 + length
    assert pos == len(stream)
    return out


def reassemble(pdus: list[bytes]) -> tuple[int, Command, bytes]:
    """(context ID, command, data set) from P-DATA-TF PDUs, with our parsers."""
    command_parts: list[bytes] = []
    data_parts: list[bytes] = []
    context_ids = set()
    for pdu in pdus:
        ((pdu_type, body),) = split_pdus(pdu)
        assert pdu_type == _dimse.P_DATA_TF
        for context_id, control, data in _dimse.parse_pdvs(body):
            context_ids.add(context_id)
            (command_parts if control & 1 else data_parts).append(bytes(data))
    (context_id,) = context_ids
    return context_id, _dimse.decode_command(b"".join(command_parts)), b"".join(data_parts)


def pynetdicom_message(pdus: list[bytes]) -> DIMSEMessage:
    """The DIMSE message pynetdicom decodes from P-DATA-TF PDUs."""
    message = DIMSEMessage()
    done = False
    for raw in pdus:
        pdu = P_DATA_TF()
        pdu.decode(raw)
        primitive = pdu.to_primitive()
        assert isinstance(primitive, P_DATA)
        done = message.decode_msg(primitive)
    assert done
    return message


def store_request(message_id: int = 7, dataset: bytes = b"\x08\x00\x16\x00") -> C_STORE:
    req = C_STORE()
    req.MessageID = message_id
    req.AffectedSOPClassUID = CT
    req.AffectedSOPInstanceUID = "1.2.3.4.5.6789"
    req.Priority = 2
    req.MoveOriginatorApplicationEntityTitle = "MOVER"
    req.MoveOriginatorMessageID = 3
    req.DataSet = BytesIO(dataset)
    return req


# -- PDU header, PDV items -----------------------------------------------


def test_pdu_header() -> None:
    assert _dimse.parse_pdu_header(b"\x04\x00\x00\x01\x00\x00") == (4, 65536)
    for bad in (b"", b"\x04\x00\x00", b"\x04" * 7):
        with pytest.raises(ProtocolError):
            _dimse.parse_pdu_header(bad)


@pytest.mark.parametrize("max_pdu", [0, 16, 100, 16384])
def test_store_request_from_pynetdicom_is_read_back(max_pdu: int) -> None:
    dataset = bytes(range(256)) * 40
    message = C_STORE_RQ()
    message.primitive_to_message(store_request(dataset=dataset))
    pdus = pdus_of(message, 5, max_pdu)
    if max_pdu:
        assert all(len(p) - 6 <= max_pdu for p in pdus)
    context_id, command, data = reassemble(pdus)
    assert context_id == 5
    assert data == dataset
    assert command == Command(
        command_field=_dimse.C_STORE_RQ,
        data_set_type=command.data_set_type,
        message_id=7,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid="1.2.3.4.5.6789",
        priority=2,
        move_originator_ae="MOVER",
        move_originator_message_id=3,
    )
    assert command.has_dataset and command.is_request


def test_echo_and_find_requests_from_pynetdicom() -> None:
    echo = C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    _, command, data = reassemble(pdus_of(message, 1, 0))
    assert command.command_field == _dimse.C_ECHO_RQ and not command.has_dataset
    assert command.message_id == 1 and command.affected_sop_class_uid == VERIFICATION
    assert data == b""

    find = C_FIND()
    find.MessageID = 9
    find.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    find.Priority = 0
    find.Identifier = BytesIO(b"\x10\x00\x20\x00\x02\x00\x00\x00X ")
    message = C_FIND_RQ()
    message.primitive_to_message(find)
    _, command, data = reassemble(pdus_of(message, 3, 0))
    assert command.command_field == 0x0020 and command.has_dataset
    assert data == b"\x10\x00\x20\x00\x02\x00\x00\x00X "


@pytest.mark.parametrize("peer_max", [0, 7, 20, 64, 16384])
def test_pdata_pdus_fragment_and_read_back_with_pynetdicom(peer_max: int) -> None:
    req = Command(command_field=_dimse.C_STORE_RQ, message_id=5, affected_sop_class_uid=CT)
    command_set = _dimse.store_rsp(req, 0xA700)
    pdus = _dimse.pdata_pdus(11, command_set, peer_max)
    if peer_max:
        assert all(len(p) - 6 <= peer_max for p in pdus)
        assert len(pdus) == -(-len(command_set) // max(peer_max - 6, 1))
    else:
        assert len(pdus) == 1
    controls = [
        control for pdu in pdus for _, control, _ in _dimse.parse_pdvs(split_pdus(pdu)[0][1])
    ]
    assert controls == [0x01] * (len(pdus) - 1) + [0x03]
    message = pynetdicom_message(pdus)
    assert message.context_id == 11
    primitive = message.message_to_primitive()
    assert isinstance(primitive, C_STORE)
    assert primitive.Status == 0xA700
    assert primitive.MessageIDBeingRespondedTo == 5
    assert primitive.AffectedSOPClassUID == CT


def test_pdvs_are_views_and_several_fit_one_pdu() -> None:
    body = bytearray((4).to_bytes(4, "big") + b"\x01\x03ab" + (3).to_bytes(4, "big") + b"\x03\x02c")
    pdvs = _dimse.parse_pdvs(body)
    assert [(c, m, bytes(d)) for c, m, d in pdvs] == [(1, 3, b"ab"), (3, 2, b"c")]
    body[6] = ord("z")
    assert bytes(pdvs[0][2]) == b"zb"  # not a copy


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x01\x01",  # item length 1 (no room for the header)
        b"\x00\x00\x00\x09\x01\x03abc",  # item longer than the PDU
        b"\x00\x00\x00\x03\x01\x03a\x00\x00",  # trailing bytes that are not an item
    ],
)
def test_bad_pdv_items_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        _dimse.parse_pdvs(body)


# -- command sets ------------------------------------------------------------


def decode_with_pydicom(command_set: bytes) -> Dataset:
    return read_dataset(BytesIO(command_set), is_implicit_VR=True, is_little_endian=True)


def test_store_response_reads_back_with_pydicom_and_pynetdicom() -> None:
    req = Command(
        command_field=_dimse.C_STORE_RQ,
        message_id=65535,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid="1.2.3.45",  # odd length: padded with NUL
        data_set_type=0x0000,
    )
    raw = _dimse.store_rsp(req, 0xC001)
    ds = decode_with_pydicom(raw)
    assert ds.CommandGroupLength == len(raw) - 12
    assert ds.CommandField == 0x8001
    assert ds.MessageIDBeingRespondedTo == 65535
    assert ds.CommandDataSetType == 0x0101
    assert ds.Status == 0xC001
    assert ds.AffectedSOPClassUID == CT
    assert ds.AffectedSOPInstanceUID == "1.2.3.45"
    assert [int(t) for t in ds.keys()] == sorted(int(t) for t in ds.keys())
    message = pynetdicom_message(_dimse.pdata_pdus(1, raw, 0))
    assert isinstance(message, DIMSEMessage)
    rsp = C_STORE_RSP()
    rsp.command_set = message.command_set
    primitive = rsp.message_to_primitive()
    assert isinstance(primitive, C_STORE)
    assert primitive.Status == 0xC001
    assert primitive.AffectedSOPInstanceUID == "1.2.3.45"
    assert _dimse.decode_command(raw) == Command(
        command_field=0x8001,
        message_id_being_responded_to=65535,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid="1.2.3.45",
        status=0xC001,
    )


def test_echo_and_failure_responses() -> None:
    req = Command(command_field=_dimse.C_ECHO_RQ, message_id=3, affected_sop_class_uid=VERIFICATION)
    ds = decode_with_pydicom(_dimse.echo_rsp(req))
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.Status) == (0x8030, 3, 0)
    assert ds.AffectedSOPClassUID == VERIFICATION and ds.CommandDataSetType == 0x0101
    rsp = C_ECHO_RSP()
    rsp.command_set = pynetdicom_message(_dimse.pdata_pdus(1, _dimse.echo_rsp(req), 0)).command_set
    primitive = rsp.message_to_primitive()
    assert isinstance(primitive, C_ECHO) and primitive.Status == 0

    find = Command(command_field=0x0020, message_id=4, affected_sop_class_uid="1.2.3")
    ds = decode_with_pydicom(_dimse.failure_rsp(find, 0x0211))
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.Status) == (0x8020, 4, 0x0211)
    assert "AffectedSOPInstanceUID" not in ds


def test_command_round_trip_with_pydicom_encoding() -> None:
    ds = Dataset()
    ds.CommandGroupLength = 0  # not checked
    ds.AffectedSOPClassUID = CT
    ds.RequestedSOPClassUID = "1.2.3"  # skipped
    ds.CommandField = 0x0001
    ds.MessageID = 12
    ds.MoveDestination = "DEST"  # skipped
    ds.Priority = 1
    ds.CommandDataSetType = 0x0001
    ds.AffectedSOPInstanceUID = "1.2.3.4"
    ds.MoveOriginatorApplicationEntityTitle = " AE "
    ds.MoveOriginatorMessageID = 65535
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, True
    write_dataset(out, ds)
    command = _dimse.decode_command(out.getvalue())
    assert command == Command(
        command_field=1,
        data_set_type=1,
        message_id=12,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid="1.2.3.4",
        priority=1,
        move_originator_ae="AE",
        move_originator_message_id=65535,
    )
    again = decode_with_pydicom(_dimse.encode_command(command))
    assert again.MessageID == 12 and again.MoveOriginatorMessageID == 65535
    assert again.MoveOriginatorApplicationEntityTitle.strip() == "AE"


def element(elem: int, value: bytes, group: int = 0) -> bytes:
    return (
        group.to_bytes(2, "little")
        + elem.to_bytes(2, "little")
        + len(value).to_bytes(4, "little")
        + value
    )


@pytest.mark.parametrize(
    "raw",
    [
        element(0x0800, b"\x01\x01"),  # no Command Field
        element(0x0100, b"\x01\x00"),  # no Command Data Set Type
        element(0x0100, b"\x01\x00\x00") + element(0x0800, b"\x01\x01"),  # US of 3 bytes
        element(0x0100, b"\x01\x00") + element(0x0010, b"\x01\x01", group=8),  # not group 0
        element(0x0100, b"\x01\x00") + element(0x0800, b"\x01\x01")[:6],  # truncated
        element(0x0100, b"\x01\x00")[:-2] + (200).to_bytes(4, "little"),  # length past end
        b"\x00" * (_dimse.MAX_COMMAND + 1),
    ],
)
def test_bad_command_sets_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        _dimse.decode_command(raw)


def test_release_and_abort_pdus_read_back_with_pynetdicom() -> None:
    ((pdu_type, body),) = split_pdus(_dimse.RELEASE_RP)
    assert pdu_type == _dimse.A_RELEASE_RP and body == b"\x00" * 4
    A_RELEASE_RP().decode(_dimse.RELEASE_RP)
    abort = A_ABORT_RQ()
    abort.decode(_dimse.abort_pdu(0x02, 0x06))
    assert (abort.source, abort.reason_diagnostic) == (0x02, 0x06)
    abort.decode(_dimse.abort_pdu(0x00, 0x00))
    assert abort.source == 0x00


# -- File Meta Information ---------------------------------------------------


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "ts", "ae"),
    [
        (CT, "1.2.826.0.1.3680043.8.498.1", "1.2.840.10008.1.2", "STORESCU"),
        ("1.2.3", "1.2.34", "1.2.840.10008.1.2.1", "AE1"),
        (CT, "1.2.3.4", "1.2.840.10008.1.2.4.50", "A"),
        (CT, "1.2", "1.2.840.10008.1.2.1.99", "SIXTEEN_CHARS_AE"),
        (CT, "1.23", "1.2.840.10008.1.2", ""),
    ],
)
def test_file_meta_is_pynetdicoms(sop_class: str, sop_instance: str, ts: str, ae: str) -> None:
    meta = create_file_meta(
        sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance), transfer_syntax=UID(ts)
    )
    meta.SourceApplicationEntityTitle = ae
    theirs = pynetdicom_file_meta(meta)
    ours = _dimse.encode_file_meta(
        sop_class,
        sop_instance,
        ts,
        ae,
        PYNETDICOM_IMPLEMENTATION_UID,
        PYNETDICOM_IMPLEMENTATION_VERSION,
    )
    assert ours == theirs
    read_ours, read_theirs = read_meta(ours), read_meta(theirs)
    assert read_ours == read_theirs
    assert read_ours.MediaStorageSOPInstanceUID == sop_instance
    assert read_ours.TransferSyntaxUID == ts
    assert read_ours.FileMetaInformationGroupLength == len(ours) - 12


def read_meta(encoded: bytes) -> Dataset:
    return _read_file_meta_info(BytesIO(encoded))


def test_file_meta_with_an_empty_uid_still_reads_back() -> None:
    # pydicom refuses to write it; a request without the UID is refused after spooling
    ours = _dimse.encode_file_meta(CT, "", "1.2.840.10008.1.2", "AE", "1.2", "V1")
    meta = read_meta(ours)
    assert meta.MediaStorageSOPInstanceUID == "" and meta.ImplementationVersionName == "V1"


def test_file_meta_refuses_a_value_too_long_for_its_length_field() -> None:
    with pytest.raises(ValueError):
        _dimse.encode_file_meta(CT, "1" * 70000, "1.2.840.10008.1.2", "AE", "1.2", "V")


# -- requestor side: C-STORE-RQ, DIMSE message PDUs, responses, A-RELEASE-RQ ---


@pytest.mark.parametrize("peer_max", [0, 7, 64, 1000, 16384])
def test_store_request_message_reads_back_with_pynetdicom(peer_max: int) -> None:
    dataset = bytes(range(256)) * 40
    command_set = _dimse.store_rq(65535, CT, "1.2.3.45")  # odd-length UID: padded
    stream = bytes(_dimse.pdata_message(9, command_set, memoryview(dataset), peer_max))
    pdus = [bytes([t, 0]) + len(b).to_bytes(4, "big") + b for t, b in split_pdus(stream)]
    if peer_max:
        assert all(len(p) - 6 <= peer_max for p in pdus)
    command_pdus = -(-len(command_set) // (max(peer_max - 6, 1) if peer_max else len(command_set)))
    data_pdus = -(-len(dataset) // (max(peer_max - 6, 1) if peer_max else len(dataset)))
    assert len(pdus) == command_pdus + data_pdus
    controls = [c for p in pdus for _, c, _ in _dimse.parse_pdvs(split_pdus(p)[0][1])]
    assert controls == [0x01] * (command_pdus - 1) + [0x03] + [0x00] * (data_pdus - 1) + [0x02]
    context_id, command, data = reassemble(pdus)
    assert (context_id, data) == (9, dataset)
    assert command == Command(
        command_field=_dimse.C_STORE_RQ,
        data_set_type=0x0001,
        message_id=65535,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid="1.2.3.45",
        priority=2,
    )
    message = pynetdicom_message(pdus)
    assert message.context_id == 9
    primitive = message.message_to_primitive()
    assert isinstance(primitive, C_STORE)
    assert primitive.MessageID == 65535 and primitive.Priority == 2
    assert primitive.AffectedSOPClassUID == CT
    assert primitive.AffectedSOPInstanceUID == "1.2.3.45"
    assert primitive.DataSet is not None and primitive.DataSet.getvalue() == dataset
    ds = decode_with_pydicom(command_set)
    assert ds.CommandGroupLength == len(command_set) - 12
    assert (ds.CommandField, ds.CommandDataSetType) == (0x0001, 0x0001)


def test_store_request_command_set_is_pynetdicoms() -> None:
    """The same elements and values as pynetdicom's C-STORE-RQ (without Move Originator)."""
    req = store_request(message_id=12)
    req.MoveOriginatorApplicationEntityTitle = None
    req.MoveOriginatorMessageID = None
    message = C_STORE_RQ()
    message.primitive_to_message(req)
    theirs = message.command_set
    ours = decode_with_pydicom(_dimse.store_rq(12, CT, "1.2.3.4.5.6789"))
    present = sorted(int(t) for t in theirs.keys() if theirs[t].value not in (None, ""))
    assert [int(t) for t in ours.keys()] == present
    for tag in present:
        assert ours[tag].value == theirs[tag].value, hex(tag)


def test_command_message_without_dataset() -> None:
    command_set = _dimse.store_rsp(Command(command_field=1, message_id=2), 0)
    stream = bytes(_dimse.pdata_message(3, command_set, None, 0))
    assert stream == _dimse.pdata_pdus(3, command_set, 0)[0]


def test_response_status_from_pynetdicom_response() -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 41
    rsp.AffectedSOPClassUID = CT
    rsp.AffectedSOPInstanceUID = "1.2.3"
    rsp.Status = 0xB007
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    _cid, command, _data = reassemble(pdus_of(message, 1, 16384))
    assert _dimse.response_status(command, _dimse.C_STORE_RSP, 41) == 0xB007
    with pytest.raises(ProtocolError, match="not 42"):
        _dimse.response_status(command, _dimse.C_STORE_RSP, 42)
    with pytest.raises(ProtocolError, match="instead of 0x8030"):
        _dimse.response_status(command, _dimse.C_ECHO_RSP, 41)
    no_status = Command(command_field=_dimse.C_STORE_RSP, message_id_being_responded_to=41)
    with pytest.raises(ProtocolError, match="without Status"):
        _dimse.response_status(no_status, _dimse.C_STORE_RSP, 41)


def test_release_request_reads_back_with_pynetdicom() -> None:
    from pynetdicom.pdu import A_RELEASE_RQ

    pdu = A_RELEASE_RQ()
    pdu.decode(_dimse.RELEASE_RQ)
    assert pdu.encode() == _dimse.RELEASE_RQ
    assert _dimse.parse_pdu_header(_dimse.RELEASE_RQ[:6]) == (_dimse.A_RELEASE_RQ, 4)
