"""The package's shape: no import cycle between its modules (function-level imports included: a
lazy import that breaks a cycle at runtime still ties two modules together), and no module so
long that a newcomer cannot read it. Reads the source only: no Spark."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "credit_spark"
MAX_LINES = 500
#: the subpackages in data-flow order: each may import only those before it (and ``errors``)
LAYERS = ["config", "lake", "transforms", "ml", "tracking", "report", "evaluation", "jobs", "cli"]
#: what sits directly in credit_spark/ besides the LAYERS
TOP_LEVEL = {"__init__", "_version", "errors", "cli"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str], root: Path = PACKAGE) -> set[str]:
    """Every credit_spark module ``path`` imports anywhere in its body, with the packages above it
    (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first)."""
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & known
    # a module's own packages are initialised before it, whatever it imports: no cycle through them
    ancestors = {".".join(this.split(".")[:i]) for i in range(1, this.count(".") + 1)}
    return found - {this} - ancestors


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_sees_a_lazy_import_cycle():
    graph = {"credit_spark.a": {"credit_spark.b"}, "credit_spark.b": {"credit_spark.a"}, "credit_spark.c": set()}
    assert cycles(graph) == [["credit_spark.a", "credit_spark.b"]]


def test_function_level_and_relative_imports_count(tmp_path):
    pkg = tmp_path / "credit_spark"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "x.py").write_text("def f():\n    from credit_spark.y import g\n")
    (pkg / "y.py").write_text("from .sub import x\n")
    known = {"credit_spark.sub", "credit_spark.sub.x", "credit_spark.y"}
    assert imported_modules(pkg / "sub" / "x.py", known, pkg) == {"credit_spark.y"}
    assert imported_modules(pkg / "y.py", known, pkg) == {"credit_spark.sub", "credit_spark.sub.x"}


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert len(graph) > 20 and any(graph.values())      # the graph was read, not empty
    assert cycles(graph) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_module_over_the_line_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module_name(path)} has {lines} lines (limit {MAX_LINES}): split it by role"


def test_every_subpackage_ships_in_the_wheel():
    import setuptools  # noqa: F401  (first: makes `distutils` setuptools' own)
    from distutils.core import run_setup

    shipped = set(run_setup(str(PACKAGE.parent / "setup.py"), stop_after="init").packages)
    on_disk = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert "credit_spark.report" in on_disk and on_disk <= shipped, sorted(on_disk - shipped)


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_packages_import_only_the_layers_before_them():
    graph = import_graph()
    wrong = sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets
                   if layer(a) in LAYERS and layer(b) in LAYERS and LAYERS.index(layer(b)) > LAYERS.index(layer(a)))
    assert any(layer(b) == "config" for targets in graph.values() for b in targets)   # edges were read
    assert wrong == []


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "credit_spark"
    for sub in ("lake", "jobs"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "lake" / "tables.py").write_text("from credit_spark.jobs.train import train\n")
    (pkg / "jobs" / "train.py").write_text("")
    known = {"credit_spark.lake", "credit_spark.lake.tables", "credit_spark.jobs", "credit_spark.jobs.train"}
    upward = imported_modules(pkg / "lake" / "tables.py", known, pkg)
    assert {b for b in upward if LAYERS.index(layer(b)) > LAYERS.index("lake")} == {"credit_spark.jobs",
                                                                                   "credit_spark.jobs.train"}


def test_the_top_level_holds_only_the_layers_and_the_entry_point():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert modules == TOP_LEVEL, sorted(modules - TOP_LEVEL)
    assert packages == set(LAYERS) - {"cli"}


def test_every_old_module_name_points_at_a_module_on_disk():
    """The 0.2 flat names (saved models' class paths) map onto files that exist."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "OLD_MODULES":
            namespace["OLD_MODULES"] = eval(compile(ast.Expression(node.value), "credit_spark", "eval"))  # noqa: S307
    old = namespace["OLD_MODULES"]
    assert {"scorecard", "stages", "calibration", "decision", "reasons", "ensemble", "neural"} <= set(old)
    missing = {k: v for k, v in old.items() if not (PACKAGE / (v.replace(".", "/") + ".py")).is_file()}
    assert missing == {}


def test_every_folder_of_modules_is_a_regular_package():
    """A folder of modules without ``__init__.py`` still imports (a namespace package), but
    ``find_packages`` leaves it out of the wheel: an installed credit_spark would lack it."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert PACKAGE / "lake" in folders
    assert sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file()) == []
