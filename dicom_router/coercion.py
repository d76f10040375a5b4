"""Applies a route's marking operations to the copy of an instance being forwarded.

Touches: nothing (works on a pydicom Dataset in memory).

The operations were checked when ``routes.yaml`` was loaded
(:class:`dicom_router.config.Coercion`: tag, VR, value). ``set`` replaces or creates the
element with the route's value; ``remove`` deletes it when present. Every other
element is left as pydicom read it: elements it never decoded are written back
byte for byte. Regional routers mark the origin establishment this way (CI-SIS
DRIM-M: PatientID = INS with IssuerOfPatientID ``ASIP-SANTE-INS-NIR``,
OtherPatientIDsSequence for local identifiers, InstitutionName); which tags a
region uses is configuration, not code.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dicom_router.config import Coercion

__all__ = ["apply_coercion"]


def apply_coercion(ds: Dataset, ops: Sequence[Coercion]) -> list[int]:
    """Applies ``ops`` to ``ds`` in order; returns the tags touched (set or removed)."""
    touched: list[int] = []
    for op in ops:
        tag = op.tag
        if op.remove is not None:
            if tag in ds:
                del ds[tag]
            touched.append(tag)
            continue
        _set(ds, op)
        touched.append(tag)
    return touched


def _set(ds: Dataset, op: Coercion) -> None:
    vr = op.resolved_vr
    if vr == "SQ":
        items = []
        for item_ops in op.item_ops:
            item = Dataset()
            for sub in item_ops:
                _set(item, sub)
            items.append(item)
        ds.add_new(op.tag, "SQ", DicomSequence(items))
        return
    value = op.value
    if isinstance(value, tuple):
        ds.add_new(op.tag, vr, [_scalar(vr, v) for v in value])
    else:
        assert value is not None
        ds.add_new(op.tag, vr, _scalar(vr, value))


def _scalar(vr: str, value: str | int | float) -> str | int | float:
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return int(value)
    if vr in ("FL", "FD"):
        return float(value)
    return str(value)
