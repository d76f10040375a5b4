"""The journal payload of a DICOM instance: a JSON reference to its spool file.

Touches: nothing.

The image itself stays in the spool (:mod:`dicom_router.spool`); the journal
keeps, encrypted like every payload, this reference::

    {"spool_dir": "/var/lib/eai/spool/img", "spool": "20261123T101500-<hex>.dcm",
     "size": 39102, "sha256": "...",
     "sop_class_uid": "...", "sop_instance_uid": "...", "study_instance_uid": "...",
     "series_instance_uid": "...", "transfer_syntax": "1.2.840.10008.1.2.1",
     "calling_ae": "CT1", "peer": "10.0.0.5:51234",
     "attrs": {"Modality": "CT", "PatientID": "...", ...},
     "key": "<base64 of the spool file's data key>"}

``size`` and ``sha256`` are the Part-10 instance's (decrypted); ``key`` is the
only copy of the data key the spool file is sealed with
(:mod:`dicom_router._sealing`), so the spool is as safe as the journal. A
reference without ``key`` (written before the spool was encrypted) names a
file in clear.

``spool_dir`` is the listener's, absolute, when the instance arrived (a later
change of the listener's ``spool_dir`` does not lose the instances already
spooled). ``attrs`` holds the elements routes test most (:data:`ROUTING_KEYWORDS`) so
that routing reads no file; any other tag is read from the spool file. A
delivery's payload is the same reference plus ``"coerce": [...]``, the route's
marking operations (``dicom_router.config.Coercion`` dumped by alias), applied by the
forwarder to the copy it sends.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dicom_router.config import Coercion
from dicom_router.spool import instance_path, read_instance
from eai.errors import InputError

__all__ = ["ROUTING_KEYWORDS", "InstanceRef"]

ROUTING_KEYWORDS = (
    "Modality",
    "InstitutionName",
    "StationName",
    "StudyDescription",
    "PatientID",
)
"""Elements copied into the reference at reception (PatientID: for the patient search)."""

_REQUIRED = (
    "spool_dir",
    "spool",
    "size",
    "sha256",
    "sop_class_uid",
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "transfer_syntax",
    "calling_ae",
    "peer",
)


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """What the journal knows about one received instance (see the module docstring)."""

    spool_dir: str
    spool: str
    size: int
    sha256: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax: str
    calling_ae: str
    peer: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    coerce: tuple[Coercion, ...] = ()
    key: bytes | None = None

    def __repr__(self) -> str:  # attrs hold PatientID, key the data key: never in logs
        return f"InstanceRef(spool={self.spool!r}, sop_instance_uid={self.sop_instance_uid!r})"

    @property
    def path(self) -> Path:
        """The spool file (ValueError when ``spool`` is not a name the spool makes)."""
        return instance_path(Path(self.spool_dir), self.spool)

    def read(self) -> bytes:
        """The instance's Part-10 bytes, decrypted and checked (see
        :func:`dicom_router.spool.read_instance` for what it raises)."""
        return read_instance(self.path, self.key, self.size, self.sha256)

    def to_json(self) -> bytes:
        data: dict[str, Any] = {k: getattr(self, k) for k in _REQUIRED}
        data["attrs"] = dict(self.attrs)
        if self.key is not None:
            data["key"] = base64.b64encode(self.key).decode("ascii")
        if self.coerce:
            data["coerce"] = [
                op.model_dump(by_alias=True, exclude_none=True, mode="json") for op in self.coerce
            ]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def with_coercion(self, ops: Sequence[Coercion]) -> InstanceRef:
        """The same reference carrying a route's marking operations."""
        return replace(self, coerce=tuple(ops))

    @classmethod
    def from_json(cls, payload: bytes) -> InstanceRef:
        """Parses a journal payload; InputError when it is not a DICOM reference."""
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"DICOM reference is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError("DICOM reference is not a JSON object")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise InputError(f"DICOM reference lacks {', '.join(missing)}")
        values: dict[str, Any] = {}
        for k in _REQUIRED:
            v = data[k]
            if k == "size":
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise InputError("DICOM reference: size is not a byte count")
            elif not isinstance(v, str):
                raise InputError(f"DICOM reference: {k} is not a string")
            values[k] = v
        attrs = data.get("attrs", {})
        if not isinstance(attrs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
        ):
            raise InputError("DICOM reference: attrs is not a mapping of strings")
        raw_ops = data.get("coerce", [])
        if not isinstance(raw_ops, list):
            raise InputError("DICOM reference: coerce is not a list")
        try:
            ops = tuple(Coercion.model_validate(op) for op in raw_ops)
        except ValueError as exc:
            raise InputError(f"DICOM reference: invalid coerce operation: {exc}") from None
        raw_key = data.get("key")
        key: bytes | None = None
        if raw_key is not None:
            try:
                key = base64.b64decode(raw_key, validate=True) if isinstance(raw_key, str) else b""
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != 32:
                raise InputError("DICOM reference: key is not a base64 256-bit key")
        return cls(**values, attrs=attrs, coerce=ops, key=key)
