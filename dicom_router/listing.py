"""What a DICOM instance adds to ``eai messages list|show``: its Study, Series, SOP UIDs.

Touches: nothing (reads the instance reference it is given; registers on import).

The UIDs are read from the instance reference (:mod:`dicom_router.reference`), whose
other fields (``attrs`` holds PatientID) are never taken out of it here. UIDs are not
patient data (the SOP Instance UID is already the clear ``control_id``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from eai.registry import ListingSpec, register_listing

__all__ = ["UID_FIELDS", "read_uids", "uids_line"]

UID_FIELDS = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
"""The JSON fields of ``eai messages list --json`` (null for other messages)."""


def read_uids(payload: bytes) -> dict[str, str | None]:
    """The three UIDs of a DICOM reference; unknown ones are None (an instance refused
    early has no study). ValueError when the payload is not JSON."""
    data = json.loads(payload)
    if not isinstance(data, dict):
        return {}
    out: dict[str, str | None] = {}
    for key in UID_FIELDS:
        value = data.get(key)
        out[key] = value if isinstance(value, str) and value else None
    return out


def uids_line(fields: Mapping[str, object]) -> str:
    """``study <uid>  series <uid>  sop <uid>`` (``-`` for an unknown one), UIDs whole."""
    return (
        f"study {fields.get('study_instance_uid') or '-'}  "
        f"series {fields.get('series_instance_uid') or '-'}  "
        f"sop {fields.get('sop_instance_uid') or '-'}"
    )


register_listing(ListingSpec("dicom", UID_FIELDS, read_uids, uids_line))
