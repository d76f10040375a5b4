"""The CI-SIS mapping from a mapping file: an inner type the mapping does not declare is an error.

Touches: files (a mapping written in tmp_path).
"""

from __future__ import annotations

from typing import Any

import pytest

from mappings.functions.cisis_source import CisisSource
from tests._cisis import ORU


def test_an_inner_type_the_mapping_does_not_declare_is_an_error(tmp_path: Any) -> None:
    from mappings._context import MappingFailure
    from mappings._loader import load_mapping_file

    (tmp_path / "cisis-partial.yaml").write_text(
        "name: cisis-partial\nsource: cisis\nresources:\n"
        "  - {id: patient, type: Patient, for_each: 'entry:Patient', rules: [{fn: cisis_copy}]}\n",
        encoding="utf-8",
    )
    partial = load_mapping_file(tmp_path / "cisis-partial.yaml")
    document = CisisSource().parse(ORU)
    with pytest.raises(MappingFailure, match=r"declares 0: declare a resource with for_each"):
        partial.run(document)
