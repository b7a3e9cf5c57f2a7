"""The package's shape: notebooks use only public, documented names; modules stay small; imports form no circle."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "transferlab"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINES = 420  # "no module over ~400 lines"
DATA_MODULES = {"transferlab.claims.manifest"}  # a table of the sources' claims: one line per claim, not code


def _notebook_code(path: Path) -> str:
    nb = json.loads(path.read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    # IPython magics and shell escapes are not Python: blank them out
    return "\n".join("\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in c.splitlines())
                     for c in cells)


def uses_of_the_package(code: str) -> set[tuple[str, str]]:
    """Every ``(module, name)`` a piece of code takes from transferlab: ``from transferlab.m import n``,
    ``from transferlab import m`` then ``m.n``, and ``import transferlab.m as x`` then ``x.n``.

    Examples
    --------
    >>> code = "from transferlab import zoo as z\\nz.load('a')\\nfrom transferlab.train import fit"
    >>> sorted(uses_of_the_package(code))
    [('transferlab.train', 'fit'), ('transferlab.zoo', 'load')]
    """
    tree = ast.parse(code)
    aliases: dict[str, str] = {}
    out: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "transferlab":
            for n in node.names:
                full = f"{node.module}.{n.name}"
                try:
                    importlib.import_module(full)
                    aliases[n.asname or n.name] = full  # a module imported by name
                except ImportError:
                    out.add((node.module, n.name))
        elif isinstance(node, ast.Import):
            for n in node.names:
                if n.name.split(".")[0] == "transferlab":
                    aliases[n.asname or n.name] = n.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            out.add((aliases[node.value.id], node.attr))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_use_only_public_documented_names(path):
    problems = []
    for module, name in sorted(uses_of_the_package(_notebook_code(path))):
        mod = importlib.import_module(module)
        if name.startswith("_"):
            problems.append(f"{module}.{name} is private")
        elif not hasattr(mod, name):
            problems.append(f"{module}.{name} does not exist")
        elif name not in getattr(mod, "__all__", ()) and not _is_submodule(module, name):
            problems.append(f"{module}.{name} is not in {module}.__all__ (not documented as public)")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def _is_submodule(module: str, name: str) -> bool:
    try:
        importlib.import_module(f"{module}.{name}")
        return True
    except ImportError:
        return False


def test_the_scanner_catches_a_private_name():
    assert ("transferlab.experiments", "_task") in uses_of_the_package(
        "from transferlab import experiments as X\nX._task(1)")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


@pytest.mark.parametrize("name", sorted(set(_modules()) - DATA_MODULES))
def test_no_module_is_too_long_to_hold_in_mind(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concept (limit ~400)"


def _top_level_imports() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
                for n in node.names:
                    full = f"{target}.{n.name}"
                    edges[mod].add(full if full in mods else target)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("transferlab"):
                edges[mod].add(node.module)
    return edges


def test_imports_form_no_circle():
    edges = _top_level_imports()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in edges.get(node, ()):
            if nxt == node or nxt not in edges:
                continue
            if state.get(nxt) == 1 and not _package_reexport(nxt, node):
                raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for m in edges:
        if m not in state:
            visit(m, [m])


def _package_reexport(package: str, module: str) -> bool:
    """A package's ``__init__`` importing its own sub-modules is not a circle."""
    return module.startswith(package + ".")


def test_scan_finds_test_reads_outside_the_final_evaluation():
    assert split_reads('task.loader("test", 100)\ntask.x_test[:5]\ntask.loader("test", final=True)') == [
        'loader("test") without final=True', ".x_test"]


def split_reads(code: str) -> list[str]:
    """The places where code reads a test split other than as a final evaluation (``final=True``)."""
    out = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and node.attr in ("x_test", "y_test"):
            out.append(f".{node.attr}")
        args = [*node.args, *(k.value for k in node.keywords)] if isinstance(node, ast.Call) else []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("loader", "labels", "split_images") and \
                any(isinstance(a, ast.Constant) and a.value == "test" for a in args):
            final = any(k.arg == "final" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                        for k in node.keywords)
            if not final:
                out.append(f'{node.func.attr}("test") without final=True')
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lessons_read_the_test_split_only_in_a_final_evaluation(path):
    """Choices are made on validation; a lesson reads test only through ``final=True`` (and never ``task.x_test``)."""
    reads = split_reads(_notebook_code(path))
    assert not reads, f"{path.name} reads the test split outside a final evaluation: {reads}"
