"""Where the tests find the national fixtures and the repository files."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures"
HL7V2 = FIXTURES / "hl7v2"
CDA = FIXTURES / "cda"
