"""eai: the regional HL7 v2 / FHIR / DICOM interoperability engine."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
