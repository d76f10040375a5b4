"""MLLP destination config: TLS file paths (tmp_path) are kept as paths.

Touches: files (tmp_path).
"""

from __future__ import annotations

from pathlib import Path

from connectors.mllp import MllpDestinationConfig


def test_destination_tls_model(tmp_path: Path) -> None:
    cfg = MllpDestinationConfig.model_validate(
        {"name": "d", "host": "h", "port": 1, "tls": {"ca": str(tmp_path / "ca.pem")}}
    )
    assert cfg.tls is not None and cfg.tls.ca == tmp_path / "ca.pem"
