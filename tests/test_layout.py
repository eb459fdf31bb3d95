"""The package's layout: a short top level, folders by layer that import only downwards, no
import cycles, and the layout table of docs/architecture.md matching the tree."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "torchrl_cli"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
# top to bottom: a folder may import only from itself and the folders after it (imports inside
# functions and under TYPE_CHECKING count too); config sits below everything that reads its
# schema's choices, and never imports the agents, models, backends or the run
LAYERS = ["cli", "tune", "analysis", "run", "agents", "backends", "rollout", "models", "config",
          "tracking", "nn", "envs", ""]
# the package's own face may reach any layer: ``torchrl_cli.load_policy`` (imported lazily there)
PUBLIC_FACE = "torchrl_cli"


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def all_imports(path: Path) -> set[str]:
    """Every package module a module names in an import: at module level, inside functions
    and classes, and under ``if TYPE_CHECKING:`` alike (a lazy import is still a dependency)."""
    found = set()
    for child in ast.walk(ast.parse(path.read_text())):
        if isinstance(child, ast.ImportFrom) and child.module:
            found.add(child.module)
            found.update(f"{child.module}.{alias.name}" for alias in child.names)
        elif isinstance(child, ast.Import):
            found.update(alias.name for alias in child.names)
    return {name for name in found if name.startswith("torchrl_cli")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, wherever the import statement is (a
    submodule's import runs its packages' ``__init__`` first, except the packages the importer
    is inside)."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        targets = set()
        for imported in all_imports(path):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in mods and not (name + ".").startswith(target + "."):
                    targets.add(target)
        graph[name] = targets - {name}
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""


def test_the_top_level_holds_the_layer_folders_and_three_modules():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries == {name for name in LAYERS if name} | {"__init__.py", "errors.py", "utils.py"}


def test_the_import_graph_has_no_cycles():
    graph, state = import_graph(), {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_folders_import_only_the_layers_below_them():
    for module, targets in import_graph().items():
        if module == PUBLIC_FACE:
            continue
        for target in targets:
            assert LAYERS.index(layer(module)) <= LAYERS.index(layer(target)), (
                f"{module} ({layer(module) or 'top'}) imports {target} ({layer(target) or 'top'})"
            )


def test_nothing_imports_the_orchestration_to_reach_a_factory():
    """run.train holds train(cfg) only; the factories live in run.build and envs.factory."""
    for module, path in modules().items():
        if module.startswith("torchrl_cli.cli.") or module == "torchrl_cli.run.train":
            continue
        text = path.read_text()
        assert "from torchrl_cli.run.train import" not in text, module


def test_the_architecture_layout_table_matches_the_tree():
    """Each folder's row names every module in it (``__init__.py`` where it holds more than a
    docstring), and nothing else; the top-level files have a row of their own. The table is
    the section of docs/architecture.md between its layout markers."""
    text = ARCHITECTURE.read_text()
    section = text.split("<!-- layout:start", 1)[1].split("<!-- layout:end -->", 1)[0]
    table = {}
    for line in section.splitlines():
        if line.startswith("| `torchrl_cli/"):
            path, _, cell = (c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))[:3])
            if path.endswith("/`"):
                table[path.strip("`")] = set(re.findall(r"`(\w+\.py)`", cell))
            else:
                table["torchrl_cli/"] = set(re.findall(r"(\w+\.py)", path))
    tree = {f"torchrl_cli/{p.name}/": {f.name for f in p.glob("*.py")}
            for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    tree["torchrl_cli/"] = {p.name for p in PACKAGE.glob("*.py")}
    assert table.keys() == tree.keys()
    for folder, files in tree.items():
        assert table[folder] <= files, folder
        assert files - {"__init__.py"} <= table[folder], folder
