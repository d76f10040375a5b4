"""The import-linter contract "no import cycle between top-level packages"
(scripts/importlinter_acyclic.py), on import graphs built in memory."""

import grimp

from scripts.importlinter_acyclic import AcyclicPackagesContract, cross_package_cycles


def graph(*imports: str) -> grimp.ImportGraph:
    g = grimp.ImportGraph()
    for number, text in enumerate(imports, start=1):
        importer, imported = text.split(" -> ")
        g.add_import(importer=importer, imported=imported, line_number=number, line_contents=text)
    return g


LAYERED = (
    "eai.pipeline -> mappings",
    "mappings -> mappings._compile",
    "mappings._compile -> eai.errors",
    "eai.pipeline -> eai.errors",
    "eai.pipeline -> eai.store",
    "eai.store -> eai.pipeline",  # a cycle inside one package is that package's business
)


def contract(*packages: str) -> AcyclicPackagesContract:
    return AcyclicPackagesContract(
        name="no cycle",
        session_options={},
        contract_options={"packages": list(packages), "exclude_type_checking_imports": "false"},
    )


def test_imports_down_and_back_to_a_base_module_make_no_cycle() -> None:
    assert cross_package_cycles(graph(*LAYERED), ["eai", "mappings"]) == []
    assert contract("eai", "mappings").check(graph(*LAYERED), verbose=False).kept


def test_a_chain_back_up_is_a_cycle_naming_the_imports_between_packages() -> None:
    g = graph(*LAYERED, "eai.errors -> eai.config", "eai.config -> eai.pipeline")
    (cycle,) = cross_package_cycles(g, ["eai", "mappings"])
    assert cycle.packages == ("eai", "mappings")
    assert cycle.imports == (("eai.pipeline", "mappings"), ("mappings._compile", "eai.errors"))
    assert set(cycle.modules) >= {"eai.pipeline", "mappings", "mappings._compile", "eai.errors"}
    check = contract("eai", "mappings").check(g, verbose=False)
    assert not check.kept
    assert check.metadata["lines"][("eai.pipeline", "mappings")] == [1]


def test_only_the_packages_named_count() -> None:
    g = graph("eai.x -> other.y", "other.y -> eai.x")
    assert cross_package_cycles(g, ["eai", "mappings"]) == []
    assert len(cross_package_cycles(g, ["eai", "other"])) == 1


def test_a_long_chain_needs_no_recursion() -> None:
    chain = [f"a.m{i} -> a.m{i + 1}" for i in range(5000)]
    g = graph(*chain, "a.m5000 -> b.back", "b.back -> a.m0")
    (cycle,) = cross_package_cycles(g, ["a", "b"])
    assert len(cycle.modules) == 5002
    assert cycle.imports == (("a.m5000", "b.back"), ("b.back", "a.m0"))
