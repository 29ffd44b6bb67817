"""The package's import graph: no cycles, lower layers never import higher ones,
and the product never imports the lab (benchmarks, PTF tests, dev tools, tests).

Read statically from the sources (every ``import``, at module level or inside a
function; imports under ``if TYPE_CHECKING:`` do not run and do not count), so a
cycle that holds today only by import order fails here rather than in a user's
process the day the order changes.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "pyoffload"

LAYERS: list[tuple[str, ...]] = [
    ("pyoffload.errors", "pyoffload.bulk", "pyoffload.gate", "pyoffload.memory"),
    ("pyoffload.rules", "pyoffload.examples"),
    ("pyoffload.pipeline",),
    ("pyoffload.p4runtime", "pyoffload.compiler", "pyoffload.embedded"),
    ("pyoffload.agent", "pyoffload.playground"),
    ("pyoffload.targets",),
    ("pyoffload.render",),
    ("pyoffload.demo", "pyoffload.up"),
    ("pyoffload.cli",),
]
"""Each part may import its own layer's modules only within itself, and lower layers."""

LAB = ("benchmarks", "ptf_tests", "devtools", "tests", "bmv2_env")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))
            if "_pb2" not in p.name}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(name: str, path: Path) -> set[str]:
    """Absolute names of what the module imports (as written; resolved below)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the pyoffload modules importing it runs (a submodule runs its parents)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        for target in imported(name, path):
            while target and target not in known:  # `from pkg import function`
                target = target.rpartition(".")[0]
            parts = target.split(".")
            targets.update(".".join(parts[:i]) for i in range(2, len(parts) + 1)
                           if ".".join(parts[:i]) in known)
        # A module's own packages run before it; they are not its imports.
        edges[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def part_of(module: str) -> tuple[int, str]:
    for level, parts in enumerate(LAYERS):
        for part in parts:
            if module == part or module.startswith(part + "."):
                return level, part
    if module == "pyoffload":
        return len(LAYERS), module
    raise AssertionError(f"{module} is in no layer of LAYERS: add it there")


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles (each holds only by import order): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = []
    for module, targets in graph().items():
        level, part = part_of(module)
        for target in targets:
            target_level, target_part = part_of(target)
            if target_level > level or (target_level == level and target_part != part):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "layering broken: " + "; ".join(sorted(wrong))


def test_the_product_never_imports_the_lab() -> None:
    wrong = [f"{name} imports {target}"
             for name, path in modules().items()
             for target in imported(name, path)
             if target.split(".")[0] in LAB]
    assert not wrong, "; ".join(wrong)


def test_the_graph_sees_a_cycle(tmp_path: Path) -> None:
    """The checker itself: a two-module cycle and a layering break are found."""
    edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(edges) == [["a", "b"]]


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_every_module_imports_alone_in_either_order(order: str) -> None:
    """Each module imported first in a fresh interpreter, in both orders: nothing
    depends on another module having been imported before it."""
    names = sorted(m for m in modules() if not m.endswith(".__main__"))  # those run
    if order == "reverse":
        names.reverse()
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('pyoffload')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    importlib.invalidate_caches()
