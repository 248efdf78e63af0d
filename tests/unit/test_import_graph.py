"""The package layout DESIGN.md promises, read from the modules' own imports with ``ast`` (lazy imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "deepspark"

AVERAGING = {"deepspark.spark._averaging", "deepspark.spark._averaging_worker"}
SHARING = {
    "deepspark.spark._sharing",
    "deepspark.spark._sharing_trainer",
    "deepspark.spark._encoding",
}
RUNTIME = {
    "deepspark.spark._prepare",
    "deepspark.spark._driver",
    "deepspark.spark._executor",
    "deepspark.spark._stage",
    "deepspark.spark._stage_worker",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function; relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _importing(prefix: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in GRAPH.items() if m == prefix or m.startswith(prefix + ".")}


def _hits(deps: set[str], targets: set[str] | str) -> set[str]:
    if isinstance(targets, str):
        return {d for d in deps if d == targets or d.startswith(targets + ".")}
    return {d for d in deps if any(d == t or d.startswith(t + ".") for t in targets)}


def test_import_graph_sees_the_package() -> None:
    assert len(GRAPH) > 50 and "deepspark.spark._stage" in GRAPH and "deepspark.config._spec" in GRAPH
    assert "deepspark.spark._executor" in GRAPH["deepspark.spark._stage_worker"]  # the reader finds real edges


@pytest.mark.parametrize(("group", "other"), [(AVERAGING, SHARING), (SHARING, AVERAGING)], ids=["averaging", "sharing"])
def test_training_masters_never_import_each_other(group: set[str], other: set[str]) -> None:
    for module in group:
        assert not _hits(GRAPH[module], other), f"{module} imports {_hits(GRAPH[module], other)}"


def test_shared_runtime_imports_neither_master() -> None:
    for module in RUNTIME:
        bad = _hits(GRAPH[module], AVERAGING | SHARING)
        assert not bad, f"{module} (shared runtime) imports a master's module: {bad}"


def test_data_never_imports_spark() -> None:
    for module, deps in _importing("deepspark.data").items():
        assert not _hits(deps, "deepspark.spark"), f"{module} imports {_hits(deps, 'deepspark.spark')}"


@pytest.mark.parametrize("heavy", ["torch", "pyspark"])
def test_config_imports_neither_torch_nor_pyspark(heavy: str) -> None:
    for module, deps in _importing("deepspark.config").items():
        assert not _hits(deps, heavy), f"{module} imports {_hits(deps, heavy)}"


def test_io_holds_the_archive_format_alone() -> None:
    for module, deps in _importing("deepspark.io").items():
        bad = _hits(deps, {"deepspark.nn", "deepspark.spark", "torch", "pyspark"})
        assert not bad, f"{module} imports {bad}"
