"""Imports inside sparsity_lib flow one way (the project style guide): the subpackages follow the data path in layers
(LAYERS), a module imports only from its own layer or the layers below it, no module cycle exists,
counting imports anywhere in a module (inside functions too), and no import sits inside a function
except of an optional package that a plain `pip install -e .` does not bring."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sparsity_lib"
# Packages outside [project].dependencies: the book, cluster and notebook extras.
OPTIONAL = {"IPython", "ipywidgets", "papermill", "ray", "submitit"}
# Lowest first; each entry names top-level modules or subpackages of sparsity_lib ("" is the package's
# own __init__). A module may import from its own layer and the ones below, never from above.
LAYERS = [
    {"startup", "validation", "folders"},
    {"nets"},
    {"data"},
    {"runs"},
    {"pruning"},
    {"study"},
    {"report"},
    {"book", "environment"},
    {"cli", "__main__", ""},
]


def module_name(path: Path) -> str:
    """'runs.fused.trainer' for sparsity_lib/runs/fused/trainer.py; 'runs' for runs/__init__.py."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PATHS = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
MODULES = sorted(name for name in PATHS if name and name != "__main__")


def tree(module: str) -> ast.Module:
    return ast.parse(PATHS[module].read_text())


def package_imports(node: ast.AST, module: str) -> set[str]:
    """The sparsity_lib modules an import statement in `module` reaches (`from . import x`,
    `from ..x import y`, `from sparsity_lib.x.y import z`, `import sparsity_lib.x`), as module names."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if PATHS[module].name == "__init__.py" else module.split(".")[:-1]
            base = package[:len(package) - node.level + 1] if node.level > 1 else package
        elif (node.module or "").split(".")[0] == "sparsity_lib":
            base = []
        else:
            return set()
        names = (node.module or "").split(".") if node.module else []
        target = ".".join([part for part in base if part] + (names[1:] if not node.level else names))
        found = {f"{target}.{alias.name}".strip(".") for alias in node.names} & set(PATHS)
        return found or {target}
    if isinstance(node, ast.Import):
        return {alias.name.partition(".")[2] for alias in node.names
                if alias.name.startswith("sparsity_lib.")} & set(PATHS)
    return set()


def graph() -> dict[str, set[str]]:
    return {module: set().union(*(package_imports(node, module) for node in ast.walk(tree(module)))) - {module}
            for module in PATHS}


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"sparsity_lib.{module} belongs to no layer of LAYERS; add it where it belongs")


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
    assert {"runs.config", "runs.store", "runs.runner", "study.chapter", "runs.training", "runs.fused.trainer",
            "runs.cluster", "pruning.surgery", "report.figures", "data.loaders", "nets.models"} <= set(MODULES)


def test_every_module_sits_in_a_layer():
    for module in PATHS:
        layer_of(module)


def test_imports_go_down_the_layers_only():
    upward = [f"{module} -> {target}" for module, targets in graph().items() for target in targets
              if layer_of(target) > layer_of(module)]
    assert not upward, f"imports from a higher layer (LAYERS, lowest first): {upward}"


def test_the_layer_check_sees_relative_imports_of_every_depth():
    nested = ast.parse("from ...data.loaders import make_loader\nfrom ..build import load_model\n"
                       "from . import groups\nfrom sparsity_lib.report import figures\nimport sparsity_lib.book")
    found = set().union(*(package_imports(node, "runs.fused.trainer") for node in nested.body))
    assert found == {"data.loaders", "runs.build", "runs.fused.groups", "report.figures", "book"}


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
    """`__all__` exists and names only what the module defines or imports (subpackage __init__ files
    hold only their docstring and need none)."""
    body = tree(module).body
    if PATHS[module].name == "__init__.py" and module:
        assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{PATHS[module]} holds more than a docstring"
        return
    declared = [node for node in body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert declared, f"{PATHS[module]} has no __all__"
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


ENTRY_POINTS = {"book", "environment", "cli", "__main__", ""}  # the only modules that may read SPARSITY_*


def environment_reads(source: str) -> list[str]:
    """The SPARSITY_* variables a module reads or writes through os.environ / os.getenv, as 'line: NAME'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Call) and any(part in ast.unparse(node.func) for part in ("environ", "getenv")):
            target = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and "environ" in ast.unparse(node.value):
            target = node.slice
        if isinstance(target, ast.Constant) and str(target.value).startswith("SPARSITY_"):
            found.append(f"{node.lineno}: {target.value}")
    return found


def test_the_environment_check_finds_reads_and_writes():
    source = ('import os\nos.environ.get("SPARSITY_STORE")\nos.getenv("SPARSITY_DATA", "")\n'
              'os.environ["SPARSITY_WORKERS"] = "2"\nos.environ.get("HOME")\n')
    assert environment_reads(source) == ["2: SPARSITY_STORE", "3: SPARSITY_DATA", "4: SPARSITY_WORKERS"]


@pytest.mark.parametrize("module", [name for name in MODULES if name.split(".")[0] not in ENTRY_POINTS])
def test_nothing_below_the_entry_points_reads_sparsity_variables(module):
    """Issue 21: where and how runs execute is passed explicitly (`runs.execution.Execution`), built from the
    environment only by `sparsity_lib.environment`, the command line and the book."""
    reads = environment_reads(PATHS[module].read_text())
    assert not reads, f"sparsity_lib/{module} reads the environment: {reads}"
