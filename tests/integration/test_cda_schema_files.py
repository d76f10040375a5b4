"""CDA content: a missing or broken schema file is a config error.

Touches: files (schemas in tmp_path).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eai.cda_schema import load_schema
from eai.errors import ConfigError


def test_missing_schema_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_schema(tmp_path / "nope.xsd")


def test_broken_schema_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xsd"
    bad.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/>")
    with pytest.raises(ConfigError, match="cannot load"):
        load_schema(bad)
