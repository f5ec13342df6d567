"""Imports point one way. Every module under ttscale/ and flows/ is parsed with ``ast``, never
imported, so this runs in well under a second and needs no optional dependency.

The rules (the map is in CONTRIBUTING.md, "Layers"):

(a) No import cycle among ttscale's units through module-level imports. A unit is a subpackage
    (``ttscale.strategies``) or a top-level module (``ttscale.schemas``); ``flows`` is one unit.
    Imports inside a function, and under ``if TYPE_CHECKING:``, do not count: they run late or
    never, and they are the sanctioned way to use something without a load-time dependency (a
    lazy heavy import, a type-only name). Cycles between single modules are checked the same way.
(b) The lower layers ``ttscale.strategies``, ``ttscale.engines``, ``ttscale.analysis`` and
    ``ttscale.reports`` never import ``ttscale.ledger``, ``flows`` or ``ttscale.cli``, not even
    inside a function: they take data and return data, and the caller does the reading.
(c) ``ttscale.analysis`` never imports duckdb (pure functions over arrays handed to them).
(d) Nothing under ``ttscale`` imports ``flows``, not even inside a function: the Prefect flows sit
    on top, over ``ttscale.service``; ``ttscale run`` calls the service, ``ttscale serve`` starts
    ``python -m flows.deployments`` without importing it.
(e) ``ttscale.service`` (one run: plan, shards, ingest, report) is above the runner, strategies,
    engines, ledger, storage, analysis and reports, and below the CLI and the flows: none of
    those below imports ``ttscale.service`` or ``ttscale.cli``, and the service imports neither
    ``ttscale.cli`` nor ``flows``; all of it even inside a function. ``ttscale.demo`` runs the
    CLI, so ``ttscale.cli`` never imports ``ttscale.demo``.

Violations known today are listed in ``ALLOWED``, each with its follow-up. The test fails on any
violation not listed, and on a listed one that has gone, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ttscale", "flows")

LOWER_LAYERS = ("ttscale.strategies", "ttscale.engines", "ttscale.analysis", "ttscale.reports")
HIGHER_LAYERS = ("ttscale.ledger", "flows", "ttscale.cli")
PURE_LAYERS = ("ttscale.analysis",)
BELOW_SERVICE = (
    "ttscale.runner", "ttscale.records", "ttscale.strategies", "ttscale.engines",
    "ttscale.ledger", "ttscale.storage", "ttscale.analysis", "ttscale.reports",
)  # fmt: skip
# Importer prefix -> what it must never import, anywhere in the module (rules d and e).
NEVER: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("ttscale",), ("flows",)),
    (BELOW_SERVICE, ("ttscale.service", "ttscale.cli")),
    (("ttscale.service",), ("ttscale.cli", "flows")),
    (("ttscale.cli",), ("ttscale.demo",)),
)
FORBIDDEN_IN_PURE = ("duckdb",)

# (importing module, imported module) -> the follow-up that removes it.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    module_level: bool
    """False inside a function or under ``if TYPE_CHECKING:``."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, module_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node``, with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        child_level = module_level
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            child_level = False
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from ((n, False) for body in child.body for n in ast.walk(body))
            yield from _walk_list(child.orelse, module_level)
            continue
        yield child, child_level
        yield from _walk(child, child_level)


def _walk_list(nodes: list[ast.stmt], module_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for node in nodes:
        yield node, module_level
        yield from _walk(node, module_level)


def _resolve(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    base = node.module or ""
    if node.level:
        parts = importer.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([base] if base else []))
    return base


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node, module_level in _walk(tree, True):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node, is_package)
            # "from pkg import mod" imports the module pkg.mod; "from mod import name" only mod.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        found += [Import(name, t, node.lineno, module_level) for t in targets]
    return found


@pytest.fixture(scope="module")
def all_imports() -> list[Import]:
    files = source_files()
    known = set(files)
    return [i for name, path in sorted(files.items()) for i in imports_of(name, path, known)]


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def unit(module: str) -> str:
    """``ttscale.strategies.replay`` -> ``ttscale.strategies``; ``flows.batch`` -> ``flows``."""
    parts = module.split(".")
    return parts[0] if parts[0] == "flows" else ".".join(parts[:2])


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def load_time_edges(imports: list[Import], known: set[str]) -> dict[str, set[str]]:
    """Module -> modules it makes Python load at import time, parents' ``__init__`` included."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        if not i.module_level or i.target not in known:
            continue
        parts = i.target.split(".")
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless the importer is inside.
        for depth in range(1, len(parts) + 1):
            target = ".".join(parts[:depth])
            if target in known and target != i.importer and not within(i.importer, (target,)):
                edges.setdefault(i.importer, set()).add(target)
    return edges


def test_the_parser_sees_the_known_imports(all_imports: list[Import]) -> None:
    # Guards the test itself: an ast walk that found nothing would pass every rule.
    pairs = {(i.importer, i.target, i.module_level) for i in all_imports}
    assert ("ttscale.runner", "ttscale.strategies", True) in pairs
    assert ("ttscale.strategies.base", "ttscale.schemas", False) in pairs  # TYPE_CHECKING
    assert ("ttscale.engines", "ttscale.engines.vllm", False) in pairs  # inside a function


def test_no_module_level_import_cycles_between_units(all_imports: list[Import]) -> None:
    known = set(source_files())
    edges: dict[str, set[str]] = {}
    for source, targets in load_time_edges(all_imports, known).items():
        for target in targets:
            if unit(source) != unit(target):
                edges.setdefault(unit(source), set()).add(unit(target))
    assert find_cycles(edges) == []


def test_no_module_level_import_cycles_between_modules(all_imports: list[Import]) -> None:
    known = set(source_files())
    assert find_cycles(load_time_edges(all_imports, known)) == []


def layer_violations(imports: list[Import]) -> dict[tuple[str, str], int]:
    """(importer, imported) -> first line, for rules (b) and (c), anywhere in the module."""
    found: dict[tuple[str, str], int] = {}
    for i in imports:
        upward = within(i.importer, LOWER_LAYERS) and within(i.target, HIGHER_LAYERS)
        impure = within(i.importer, PURE_LAYERS) and within(i.target, FORBIDDEN_IN_PURE)
        if upward or impure:
            found.setdefault((i.importer, i.target), i.line)
    return found


def test_lower_layers_import_no_ledger_flows_cli_and_analysis_no_duckdb(
    all_imports: list[Import],
) -> None:
    found = layer_violations(all_imports)
    new = {
        f"{a} imports {b} (line {line})" for (a, b), line in found.items() if (a, b) not in ALLOWED
    }
    assert not new, "imports that point up a layer:\n" + "\n".join(sorted(new))
    gone = {f"{a} -> {b}" for a, b in ALLOWED if (a, b) not in found}
    assert not gone, "fixed; remove from ALLOWED:\n" + "\n".join(sorted(gone))


def test_rules_catch_a_planted_violation(tmp_path: Path) -> None:
    source = tmp_path / "planted.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import duckdb\n"
        "def load():\n    from ttscale.ledger import Ledger\n"
    )
    imports = imports_of("ttscale.analysis.planted", source, {"ttscale.ledger"})
    assert layer_violations(imports) == {
        ("ttscale.analysis.planted", "duckdb"): 3,
        ("ttscale.analysis.planted", "ttscale.ledger"): 5,
    }
    assert not any(i.module_level for i in imports if i.target != "typing")
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def service_violations(imports: list[Import]) -> dict[tuple[str, str], int]:
    """(importer, imported) -> first line, for rules (d) and (e), anywhere in the module."""
    found: dict[tuple[str, str], int] = {}
    for i in imports:
        for importers, targets in NEVER:
            if within(i.importer, importers) and within(i.target, targets):
                found.setdefault((i.importer, i.target), i.line)
    return found


def test_flows_on_top_and_the_service_between_cli_and_the_layers_below(
    all_imports: list[Import],
) -> None:
    found = service_violations(all_imports)
    listed = [f"{a} imports {b} (line {line})" for (a, b), line in sorted(found.items())]
    assert not listed, "imports across the service layer:\n" + "\n".join(listed)


def test_the_service_rules_catch_planted_violations(tmp_path: Path) -> None:
    source = tmp_path / "planted.py"
    source.write_text(
        "def go():\n    from flows.batch import ttscale_batch\n"
        "def up():\n    import ttscale.service\n"
    )
    known = {"flows.batch", "ttscale.service"}
    assert service_violations(imports_of("ttscale.runner", source, known)) == {
        ("ttscale.runner", "flows.batch"): 2,
        ("ttscale.runner", "ttscale.service"): 4,
    }
    assert service_violations(imports_of("ttscale.cli.run", source, known)) == {
        ("ttscale.cli.run", "flows.batch"): 2,
    }
    assert service_violations(imports_of("flows.batch", source, known)) == {}
