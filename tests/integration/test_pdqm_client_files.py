"""The identity server client: missing TLS files are a config error.

Touches: files (tmp_path).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eai.errors import ConfigError
from identity.pdqm import (
    IdentityServerClient,
)
from tests._identity_server import (
    config,
)


def test_missing_tls_files_are_a_config_error(tmp_path: Path):
    cfg = config(
        url="https://x/fhir",
        tls={"ca": str(tmp_path / "none.pem"), "cert": "c.pem", "key": "k.pem"},
    )
    with pytest.raises(ConfigError, match="TLS"):
        IdentityServerClient(cfg)
