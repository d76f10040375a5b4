"""eai.config on files: a missing file, every issue of a bad file in file order.

Touches: files (routes.yaml written in tmp_path).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eai.config import (
    check_config,
    load_config,
)
from eai.errors import ConfigError, ConfigIssue
from tests._config_types import BASE, connectors  # noqa: F401 - connectors: autouse fixture


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    (issue,) = info.value.issues
    assert issue.file == str(missing) and (issue.line, issue.column) == (1, 1)
    assert "No such file" in issue.message
    assert check_config(missing) == info.value.issues


def test_check_reports_every_issue_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        BASE.replace("bind:", "bnd:")
        .replace("port: 2576", "port: ${P}")
        .replace("to: [out-b]", "to: [out-c]"),
        encoding="utf-8",
    )
    found = check_config(path, env={})
    assert all(isinstance(issue, ConfigIssue) for issue in found)
    assert [(i.line, i.column) for i in found] == [(2, 5), (4, 5), (9, 11), (13, 10)]
    assert all(str(i).startswith(f"{path}:") for i in found)
