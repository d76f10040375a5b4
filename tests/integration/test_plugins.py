"""eai.plugins: the core loads the bundled plugins by name only; plugins import no other plugin.

Each check runs in a fresh interpreter (what a module imports shows in ``sys.modules``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _fresh(code: str) -> object:
    """Runs ``code`` in a new interpreter at the repository root; returns what it prints (JSON)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_importing_every_core_module_loads_no_plugin() -> None:
    loaded = _fresh(
        """
        import importlib, json, pkgutil, sys
        import eai
        for m in pkgutil.walk_packages(eai.__path__, "eai."):
            importlib.import_module(m.name)
        print(json.dumps(sorted(
            k for k in sys.modules if k.split(".")[0] in ("connectors", "dicom_router")
        )))
        """
    )
    assert loaded == []


def test_connectors_package_imports_neither_its_modules_nor_dicom_router() -> None:
    loaded = _fresh(
        """
        import json, sys
        import connectors.mllp
        print(json.dumps(sorted(
            k for k in sys.modules if k.split(".")[0] == "dicom_router"
            or k in ("connectors.http_in", "connectors.filedrop")
        )))
        """
    )
    assert loaded == []


def test_dicom_router_imports_no_connector() -> None:
    loaded = _fresh(
        """
        import json, sys
        import dicom_router
        print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] == "connectors")))
        """
    )
    assert loaded == []


def test_load_builtin_registers_every_bundled_type() -> None:
    types = _fresh(
        """
        import json
        from eai import plugins, registry
        plugins.load_builtin()
        print(json.dumps({
            "modules": list(plugins.BUILTIN),
            "listeners": sorted(registry.listeners()),
            "destinations": sorted(registry.destinations()),
        }))
        """
    )
    assert types == {
        "modules": [
            "connectors.filedrop",
            "connectors.http_in",
            "connectors.mllp",
            "connectors.dmp.destination",
            "connectors.mssante.destination",
            "connectors.mssante.receipts",
            "connectors.fhir",
            "dicom_router.plugin",
        ],
        "listeners": ["dicom", "filedrop", "http", "mllp", "mssante_receipts"],
        "destinations": ["dicom", "dmp", "fhir", "mllp", "mssante"],
    }
