"""Everything the bundled DICOM plugin registers for the engine: the types, ``when`` keys and
listing fields (:mod:`dicom_router.registration`), the content type ``dicom``
(:mod:`dicom_router.content`) and the spool retention job (:mod:`dicom_router.retention`).

Touches: nothing itself (importing registers; loads pydicom). The module of
:data:`eai.plugins.BUILTIN`.
"""

from __future__ import annotations

from dicom_router import content as _content  # noqa: F401 - registers content type dicom
from dicom_router import registration as _registration  # noqa: F401 - types, when keys
from dicom_router import retention as _retention  # noqa: F401 - registers the retention job

__all__: list[str] = []
