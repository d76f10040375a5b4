"""routes.yaml ``business_acks``: a route names the destination of its follow-ups (ZAM
business acknowledgements); ``eai check`` refuses an undeclared or non-HL7 one at its
FILE:LINE:COL."""

from __future__ import annotations

import pytest

from eai.config import load_config_text
from eai.errors import ConfigError
from tests._config_types import BASE, connectors  # noqa: F401 - connectors: autouse fixture

WITH_ACKS = BASE.replace("    to: [out-b]\n", "    to: [out-b]\n    business_acks: {name}\n")


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "routes.yaml", {})
    return [str(issue) for issue in info.value.issues]


def test_a_route_names_its_return_destination() -> None:
    config = load_config_text(WITH_ACKS.format(name="out-b"), "routes.yaml", {})
    assert config.routes[0].business_acks == "out-b"
    assert load_config_text(BASE, "routes.yaml", {}).routes[0].business_acks is None


def test_an_undeclared_return_destination_is_refused_at_its_place() -> None:
    assert _issues(WITH_ACKS.format(name="out-c")) == [
        "routes.yaml:14:20: routes[0].business_acks: unknown destination 'out-c' "
        "(did you mean 'out-b'?)"
    ]


def test_a_return_destination_must_take_hl7v2() -> None:
    text = WITH_ACKS.format(name="scad").replace(
        "routes:\n",
        "  - name: scad\n    type: fhir\n    base_url: https://scad.invalid/fhir\nroutes:\n",
    )
    (issue,) = _issues(text)
    assert issue.startswith("routes.yaml:17:20: routes[0].business_acks: destination 'scad' (fhir)")
    assert issue.endswith("business acknowledgements are application/hl7-v2")
