"""A spooled instance for tests of the forwarding side: pydicom's CT_small, sealed."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from dicom_router._sealing import retention_tag
from dicom_router.reference import InstanceRef
from dicom_router.spool import Spool

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def spooled_ct(spool_dir: Path, attrs: dict[str, str] | None = None) -> tuple[InstanceRef, bytes]:
    """pydicom's CT_small written to a new spool in ``spool_dir``: its reference (``attrs``:
    the routing attributes the SCP would have recorded) and the Part-10 bytes."""
    spool = Spool(spool_dir)
    spool.open()
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    data = Path(path).read_bytes()
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    f = spool.write([data], len(data), retention_tag("CT1", ds.SOPInstanceUID))
    ref = InstanceRef(
        str(spool_dir),
        f.name,
        f.size,
        f.sha256,
        ds.SOPClassUID,
        ds.SOPInstanceUID,
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        EXPLICIT_LE,
        "CT1",
        "127.0.0.1:5",
        attrs or {},
        key=f.key,
    )
    return ref, data
