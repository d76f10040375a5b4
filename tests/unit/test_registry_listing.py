"""Listing fields are known without importing a plugin (eai.plugins.LISTINGS); reading a
payload of a plugin's content type loads the plugins then."""

from __future__ import annotations

import json

import pytest

from eai import plugins, registry


def test_the_declared_listings_are_what_the_plugins_register() -> None:
    plugins.load_builtin()
    registered = {ct: spec.fields for ct, spec in registry.listing_specs().items()}
    assert dict(plugins.LISTINGS) == registered


def test_before_the_plugins_load_the_keys_are_known_and_reading_loads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = registry.listing_specs()["dicom"]
    loads: list[str] = []

    def load() -> None:
        loads.append("plugins")
        registry._listings.setdefault("dicom", real)

    monkeypatch.setattr(plugins, "loaded", lambda: False)
    monkeypatch.setattr(registry, "_listings", {})
    monkeypatch.setattr(registry, "load_builtin_connectors", load)

    spec = registry.listing_specs()["dicom"]
    assert spec.fields == real.fields and loads == []
    payload = json.dumps({"study_instance_uid": "1.2.3", "sop_instance_uid": "1.2.3.4"}).encode()
    assert spec.read(payload) == real.read(payload) and loads == ["plugins"]
    fields = {"study_instance_uid": "1.2.3"}
    assert spec.line(fields) == real.line(fields)
