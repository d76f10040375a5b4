"""An import-linter contract type: no import cycle goes through two top-level packages.

Touches: files (reads the packages' sources to build their import graph, when it leaves
out ``TYPE_CHECKING`` imports).

``acyclic_siblings`` checks siblings under one ancestor and ``layers`` orders whole
packages; neither says "a module of ``mappings`` may import ``eai.errors`` and
``eai.pipeline`` may import ``mappings``, but no chain of imports leads back". This one
does: it finds the strongly connected components of the module import graph (Tarjan)
and fails for each one holding modules of more than one of ``packages``, listing the
imports between packages that close it. Imports under ``TYPE_CHECKING`` are left out by
default (``exclude_type_checking_imports``): a lower layer may name an upper one's
types there (docs/STYLE: pynetdicom's ``dul.py``); function-level imports count.

Declared in pyproject.toml::

    [tool.importlinter]
    contract_types = ["acyclic_packages: scripts.importlinter_acyclic.AcyclicPackagesContract"]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

__all__ = ["AcyclicPackagesContract", "CrossPackageCycle", "cross_package_cycles"]


@dataclass(frozen=True)
class CrossPackageCycle:
    """One strongly connected component spanning several top-level packages."""

    packages: tuple[str, ...]
    modules: tuple[str, ...]
    imports: tuple[tuple[str, str], ...]
    """The imports of the component from one package to another (importer, imported)."""


def _top(module: str) -> str:
    return module.partition(".")[0]


def _components(modules: Sequence[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges[node]
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def cross_package_cycles(
    graph: grimp.ImportGraph, packages: Iterable[str]
) -> list[CrossPackageCycle]:
    """The import cycles of ``graph`` through more than one of ``packages``, sorted."""
    wanted = set(packages)
    modules = sorted(m for m in graph.modules if _top(m) in wanted)
    edges = {
        m: sorted(i for i in graph.find_modules_directly_imported_by(m) if _top(i) in wanted)
        for m in modules
    }
    cycles: list[CrossPackageCycle] = []
    for component in _components(modules, edges):
        tops = sorted({_top(m) for m in component})
        if len(tops) < 2:
            continue
        members = set(component)
        crossing = tuple(
            (m, i) for m in sorted(members) for i in edges[m] if i in members and _top(i) != _top(m)
        )
        cycles.append(CrossPackageCycle(tuple(tops), tuple(sorted(component)), crossing))
    return sorted(cycles, key=lambda c: c.modules)


class AcyclicPackagesContract(Contract):
    """No import cycle through two of ``packages`` (modules of one package may import
    each other in a cycle; that is the package's own business)."""

    type_name = "acyclic_packages"

    packages = fields.ListField(subfield=fields.StringField())
    exclude_type_checking_imports = fields.BooleanField(default=True)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        packages: list[str] = list(self.packages)  # type: ignore[call-overload]
        if self.exclude_type_checking_imports:
            graph = grimp.build_graph(*packages, exclude_type_checking_imports=True, cache_dir=None)
        cycles = cross_package_cycles(graph, packages)
        lines = {
            (importer, imported): sorted(
                detail["line_number"]
                for detail in graph.get_import_details(importer=importer, imported=imported)
            )
            for cycle in cycles
            for importer, imported in cycle.imports
        }
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles, "lines": lines})

    def render_broken_contract(self, check: ContractCheck) -> None:
        lines: dict[tuple[str, str], list[int]] = check.metadata["lines"]
        for cycle in check.metadata["cycles"]:
            output.print_error(
                f"An import cycle through {', '.join(cycle.packages)} "
                f"({len(cycle.modules)} modules); its imports between packages:"
            )
            output.new_line()
            for importer, imported in cycle.imports:
                where = ", ".join(f"l.{n}" for n in lines.get((importer, imported), []))
                output.print(f"-   {importer} -> {imported} ({where})")
            output.new_line()
