"""Identity status (PROV / RECUP / VALI / QUAL) from PID-32 and the presence of an INS.

Touches: nothing.

Default table (RNIV; FR Core code system fr-core-cs-identity-status), which
``routes.yaml`` may override per listener:

| PID-32          | INS in PID-3 | status |
|-----------------|--------------|--------|
| QUAL            | any          | QUAL   |
| RECUP           | any          | RECUP  |
| VALI            | yes          | QUAL   |
| VALI            | no           | VALI   |
| PROV            | yes          | RECUP  |
| anything else   | any          | PROV   |

Only a QUAL identity may be sent with its INS to the DMP or MSSanté.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["DEFAULT_TABLE", "IdentityStatus", "identity_status"]

IdentityStatus = Literal["PROV", "RECUP", "VALI", "QUAL"]

DEFAULT_TABLE: Mapping[tuple[str, bool], IdentityStatus] = {
    ("QUAL", True): "QUAL",
    ("QUAL", False): "QUAL",
    ("RECUP", True): "RECUP",
    ("RECUP", False): "RECUP",
    ("VALI", True): "QUAL",
    ("VALI", False): "VALI",
    ("PROV", True): "RECUP",
    ("PROV", False): "PROV",
}


def identity_status(
    pid32: str,
    has_ins: bool,
    table: Mapping[tuple[str, bool], IdentityStatus] | None = None,
) -> IdentityStatus:
    """The identity status for a PID-32 code and whether PID-3 carries an INS."""
    code = pid32.strip().upper()
    return (table or DEFAULT_TABLE).get((code, has_ins), "PROV")
