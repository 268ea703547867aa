"""Imports inside sparsity_lib flow one way (STYLE.md): no cycle among its modules, counting imports
anywhere in a module (inside functions too), and no import inside a function except of an optional
package that a plain `pip install -e .` does not bring."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sparsity_lib"
# Packages outside [project].dependencies: the book, cluster and notebook extras.
OPTIONAL = {"IPython", "ipywidgets", "papermill", "ray", "submitit"}
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "__main__"))


def tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text())


def package_imports(node: ast.AST) -> set[str]:
    """The sparsity_lib modules an import statement reaches (`from . import x`, `from .x import y`,
    `from sparsity_lib.x import y`, `import sparsity_lib.x`)."""
    found = set()
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 or (node.module or "").split(".")[0] == "sparsity_lib":
            base = (node.module or "") if node.level else (node.module or "").partition(".")[2]
            if base:
                found.add(base.split(".")[0])
            else:  # `from . import plots`: the names are modules
                found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "sparsity_lib" and len(parts) > 1:
                found.add(parts[1])
    return found & set(MODULES)


def graph() -> dict[str, set[str]]:
    return {module: set().union(*(package_imports(node) for node in ast.walk(tree(module)))) - {module}
            for module in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module], path[len(path):] = 1, [module]
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_package_has_modules_to_check():
    assert {"config", "store", "runner", "chapter", "train", "fused", "cluster"} <= set(MODULES)


def test_no_import_cycle_among_modules():
    assert find_cycle(graph()) is None, f"import cycle: {' -> '.join(find_cycle(graph()))}"


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("module", MODULES)
def test_imports_inside_functions_are_of_optional_packages_only(module):
    nested = []
    for function in ast.walk(tree(module)):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                nested += [f"{function.name}: {name}" for name in names
                           if name.startswith(".") or name.split(".")[0] not in OPTIONAL]
    assert not nested, f"{module} imports inside functions (allowed only: {', '.join(sorted(OPTIONAL))}): {nested}"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_lists_its_public_names(module):
    """`__all__` exists and names only what the module defines or imports."""
    body = tree(module).body
    declared = [node for node in body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert declared, f"sparsity_lib/{module}.py has no __all__"
    names = ast.literal_eval(declared[0].value)
    defined = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    assert not set(names) - defined, f"{module}.__all__ names undefined: {sorted(set(names) - defined)}"
