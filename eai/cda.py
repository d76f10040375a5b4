"""The CDA R2 header reader, public: find the ClinicalDocument, read its header, parse it.

Touches: nothing.

What plugins that take CDA documents (the HTTP and file-drop intakes) use from the
core: :func:`find_clinical_document` (also inside a self-presenting CI-SIS
stylesheet), :func:`read_cda` (:class:`CdaDocument`: the :class:`CdaHeader`
routes test, the patient, the document id) and :func:`parse_cda`, the content
type ``cda``'s parser (registered when this module is imported). The reading
itself is :mod:`eai._cda_content`'s.
"""

from eai._cda_content import (
    CLINICAL_DOCUMENT,
    HL7_NS,
    NAMESPACES,
    CdaDocument,
    CdaHeader,
    find_clinical_document,
    parse_cda,
    read_cda,
)

__all__ = [
    "CLINICAL_DOCUMENT",
    "HL7_NS",
    "NAMESPACES",
    "CdaDocument",
    "CdaHeader",
    "find_clinical_document",
    "parse_cda",
    "read_cda",
]
