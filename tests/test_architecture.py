"""The package's shape, checked from its source: no import cycles, dependencies pointing down the
layers, and no probing of tasks with ``hasattr``.

The import graph counts every import a module makes at run time, function-level (lazy) imports
included, and skips ``if TYPE_CHECKING:`` blocks. Run ``python tests/test_architecture.py`` to print
the graph's layers and any cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qrnn_qiskit"
# top-level parts of the package, highest first; a part may import only parts at its level or below
LAYERS = [
    {"cli", "demo"},
    {"nn"},  # the flat QRNN module of the Python API (its replay uses the evaluation protocols)
    {"evaluation", "sweep"},
    {"training"},
    {"models", "data"},
    {"backends"},
    {"circuits"},
    {"options", "errors", "fileio", "formatting"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> set[str]:
    """Package modules ``path`` imports at run time (resolved to existing modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("qrnn_qiskit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("qrnn_qiskit"):
                target = node.module
            else:
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for i, parts in enumerate(LAYERS):
        if part in parts:
            return i
    raise AssertionError(f"{module} is in no layer; add its top-level part to LAYERS")


def test_no_import_cycles():
    # a package's __init__ importing its own submodules is not a cycle between parts; modules
    # importing each other are
    edges = {m: {d for d in ds if not m.startswith(d + ".")} for m, ds in graph().items()}
    assert cycles(edges) == []


def test_dependencies_point_down_the_layers():
    wrong = [
        f"{m} → {d}"
        for m, ds in graph().items()
        if m != "qrnn_qiskit"
        for d in ds
        if d != "qrnn_qiskit" and layer(d) < layer(m)
    ]
    assert wrong == []


def _probes(name: str) -> list[str]:
    """Places that call hasattr/getattr on a variable or attribute called ``name``."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("hasattr", "getattr")
                and node.args
                and getattr(node.args[0], "id", getattr(node.args[0], "attr", None)) == name
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return offenders


def test_tasks_executors_and_protocols_are_not_probed_with_hasattr():
    """Tasks, executors and hardware protocols declare what they offer (``Task``,
    ``backends.noisy.Executor`` / ``RemoteExecutor``, ``evaluation.protocols.HardwareProtocol``)."""
    assert [p for name in ("task", "executor", "protocol") for p in _probes(name)] == []


def test_the_native_runtime_keeps_its_state_in_one_object():
    from qrnn_qiskit.backends.statevector import native

    tree = ast.parse(Path(native.__file__).read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    mutable = {name for name in assigned if not name.isupper() and name != "__all__"}
    assert mutable == set(), mutable  # constants only, plus the one RUNTIME object
    assert isinstance(native.RUNTIME, native.NativeRuntime)


if __name__ == "__main__":  # pragma: no cover - a readable report of the graph
    edges = graph()
    for i, parts in enumerate(LAYERS):
        print(f"layer {i}: {', '.join(sorted(parts))}")
    found = cycles({m: {d for d in ds if not m.startswith(d + ".")} for m, ds in edges.items()})
    count = sum(map(len, edges.values()))
    print(f"{len(edges)} modules, {count} imports, cycles: {found or 'none'}")
