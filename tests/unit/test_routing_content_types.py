"""message_type patterns for the engine's other content types: CDA^<code>, DICOM^<modality>."""

import pytest

from eai.config import load_config_text
from eai.config._routes import MessageTypeSet

ROUTES = """
listeners:
  - {{name: in, type: mllp, bind: "127.0.0.1:0"}}
destinations:
  - {{name: out, type: mllp, host: 127.0.0.1, port: 1}}
routes:
  - {{name: r, from: [in], when: {{message_type: [{types}]}}, to: [out]}}
"""


@pytest.mark.parametrize(
    "pattern,value,hit",
    [
        ("CDA^11502-2", "CDA^11502-2", True),
        ("CDA^11502-2", "CDA^18748-4", False),
        ("CDA", "CDA^18748-4", True),
        ("CDA^*", "CDA", True),
        ("DICOM^CT", "DICOM^CT", True),
        ("DICOM^CT", "DICOM^MR", False),
        ("DICOM", "DICOM^MR", True),
        ("ADT^A01", "CDA^A01", False),
    ],
)
def test_document_and_modality_patterns(pattern, value, hit):
    assert (value in MessageTypeSet.of([pattern])) is hit


@pytest.mark.parametrize("bad", ["ADT^A1", "CDA^", "DICOM^C T", "XDS^1234"])
def test_hl7_patterns_stay_strict(bad):
    with pytest.raises(ValueError, match="not a message type pattern"):
        MessageTypeSet.of([bad])


def test_routes_yaml_accepts_them():
    cfg = load_config_text(ROUTES.format(types="CDA^11502-2, DICOM^CT, ADT^A01"), env={})
    assert cfg.routes[0].when is not None


XPATH_ROUTES = """
listeners:
  - {name: in, type: mllp, bind: "127.0.0.1:0"}
destinations:
  - {name: out, type: mllp, host: 127.0.0.1, port: 1}
routes:
  - name: lab
    from: [in]
    when: {xpath: "hl7:code/@code", equals: "11502-2"}
    to: [out]
"""


def test_xpath_condition_on_cda_and_harmless_on_hl7():
    from eai import hl7
    from eai.cda import parse_cda
    from eai.routing import evaluate
    from tests._paths import CDA, HL7V2

    cfg = load_config_text(XPATH_ROUTES, env={})
    tsh = parse_cda((CDA / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes(), None).routable
    img = parse_cda((CDA / "IMG_CR_IMG_2024.01.xml").read_bytes(), None).routable
    adt = hl7.parse((HL7V2 / "pamfr_a01_admission.er7").read_bytes())
    assert evaluate(cfg.routes, "in", tsh).destinations == ("out",)
    assert evaluate(cfg.routes, "in", img).destinations == ()
    assert evaluate(cfg.routes, "in", adt).destinations == ()


def test_bad_xpath_is_a_config_error():
    from eai.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid XPath"):
        load_config_text(XPATH_ROUTES.replace("hl7:code/@code", "hl7:code/@@"), env={})
