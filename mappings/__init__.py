"""Declarative mappings (YAML) from HL7 v2 and CDA to FHIR R4, and their tests.

Touches: files (reads mapping files).

Messages that no mapping changes are forwarded byte for byte as received.
"""
