"""The house: three rooms (core, experiments, figures), each importing only the rooms below it, no cycles.

The import graph is read from the source (every ``import`` statement, also those inside functions),
so a lazy import cannot hide a cycle or an arrow running back up.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dcft_edu

PKG = Path(dcft_edu.__file__).resolve().parent
ROOMS = {"core": 0, "experiments": 1, "figures": 2}  # a room may import its own and the lower rooms


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("experiments", "figures") else "core"


def import_graph() -> dict[str, set[str]]:
    """module -> the dcft_edu modules it imports (resolved to modules, not names inside them)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                for cand in names + [target]:
                    if cand in files:
                        edges.add(cand)
                        if cand == target:
                            break
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
        edges.discard(mod)
        graph[mod] = edges
    return graph


def test_rooms_only_import_downwards():
    bad = [f"{a} -> {b}" for a, bs in import_graph().items() for b in bs if ROOMS[_room(b)] > ROOMS[_room(a)]]
    assert not bad, "imports running up a room (core < experiments < figures):\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ imports its own modules by design; that is not a cycle between modules
    graph = {a: {b for b in bs if not (b == a.rsplit(".", 1)[0] or a.startswith(b + "."))} for a, bs in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_core_loads_no_data_or_plotting_library():
    code = (
        "import sys, dcft_edu\n"
        "from dcft_edu import count_adapter_parameters, inject_adapters, save_adapters\n"
        "heavy = [m for m in ('datasets', 'pandas', 'matplotlib', 'seaborn', 'peft') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing the core loaded {out}"


def test_the_graph_reader_sees_lazy_imports():
    """The cycle test would be vacuous if the reader missed imports inside functions: it must see them."""
    graph = import_graph()
    assert "dcft_edu.experiments.trainer" in graph["dcft_edu.experiments.sweep"]  # imported inside a function
    assert "dcft_edu.inject" in graph["dcft_edu.regularizers"]
