"""Verify the VIHF signature of a received envelope with Debian's xmlsec1.

Touches: files (a temporary copy of the envelope and of the trusted CA) and a subprocess.

xmlsec1 (libxmlsec1 over OpenSSL) is another XML-DSig implementation than the signxml the
engine signs with, so a canonicalisation mistake cannot pass on both sides. The
assertion's ``ID`` is declared as its id attribute; only the seal CA handed in is trusted.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["verify_dsg", "verify_vihf"]


def verify_dsg(signature: bytes, trusted_ca: Path) -> str:
    """ "" when xmlsec1 verifies the submission-set signature document (its SignedInfo
    references: the IHE Manifest and the XAdES SignedProperties; the Manifest's own
    references are the documents, checked against the parts by :mod:`._checks`)."""
    return _xmlsec1(
        signature,
        trusted_ca,
        [
            "--ignore-manifests",
            "--id-attr:Id",
            "http://www.w3.org/2000/09/xmldsig#:Manifest",
            "--id-attr:Id",
            "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
        ],
        "submission-set signature",
    )


def verify_vihf(envelope: bytes, trusted_ca: Path) -> str:
    """ "" when xmlsec1 verifies the first signature of ``envelope`` (the VIHF) against
    ``trusted_ca``; else why not (xmlsec1's last line)."""
    return _xmlsec1(
        envelope,
        trusted_ca,
        ["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"],
        "VIHF signature",
    )


def _xmlsec1(document: bytes, trusted_ca: Path, options: list[str], what: str) -> str:
    """ "" when xmlsec1 verifies the first signature of ``envelope`` (the VIHF) against
    ``trusted_ca``; else why not (xmlsec1's last line)."""
    program = shutil.which("xmlsec1")
    if program is None:
        return "xmlsec1 is not installed (scripts/install-test-peers.sh installs it)"
    with tempfile.TemporaryDirectory(prefix="dmp-standin-") as directory:
        path = Path(directory) / "signed.xml"
        path.write_bytes(document)
        result = subprocess.run(  # noqa: S603 - fixed program and arguments
            [
                program,
                "--verify",
                *options,
                "--trusted-pem",
                str(trusted_ca),
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode == 0:
        return ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return f"{what} not verified by xmlsec1: {lines[-1] if lines else result.returncode}"
