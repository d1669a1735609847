"""The package's layers: io, domains, prompts -> phantoms, models, oracle -> engines (the domain check among them)
-> ui, app and augment; train and bench on top. A module imports only from its own layer or below, no two
parts import each other (directly or around a loop), and every import of medviz's own modules sits at the top of
its file."""

import ast
from pathlib import Path

import medviz

ROOT = Path(medviz.__file__).parent
#: Layer of each top-level part of the package (and the launcher).
LAYERS = {
    "__init__": 0,
    "io": 0,
    "folders": 0,
    "card": 1,
    "domains": 0,
    "metrics": 0,
    "shifts": 0,
    "processes": 0,
    "progress": 0,
    "display": 1,
    "prompts": 1,
    "phantoms": 2,
    "backends": 1,
    "models": 2,
    "oracle": 2,
    "classifiers": 2,
    "ladine": 2,
    "progression": 2,
    "data": 2,
    "engines": 3,
    "ui": 5,
    "app": 5,
    "train": 6,
    "bench": 6,
    "augment": 5,
}


def _part(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path):
    """(imported medviz part, line, inside a function) for every import of a medviz module in ``path``."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]        # e.g. ("medviz", "engines")
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [
                    ".".join((*base, node.module)) if node.module else ".".join((*base, a.name)) for a in node.names
                ]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "medviz":
                part = parts[1] if len(parts) > 1 else "__init__"
                if not ((ROOT / part).is_dir() or (ROOT / f"{part}.py").is_file()):
                    part = "__init__"                                  # a name from medviz/__init__.py
                yield part, node.lineno, id(node) in in_function


def _third_party(path: Path) -> set[str]:
    """The top-level names of the other packages ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add((node.module or "").split(".")[0])
    return found


def _modules():
    return sorted(ROOT.rglob("*.py")) + [ROOT.parent / "app.py"]


def test_every_part_has_a_layer():
    assert {_part(p) for p in sorted(ROOT.rglob("*.py"))} <= set(LAYERS)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in _modules():
        own = "app" if path.name == "app.py" and path.parent == ROOT.parent else _part(path)
        for part, line, _ in _imports(path):
            if LAYERS[part] > LAYERS[own]:
                upward.append(f"{path.name}:{line} ({own}) imports {part}")
    assert upward == []


def test_the_runtime_runs_no_training_or_bench_code_and_only_the_ui_imports_gradio():
    for path in _modules():
        own = "app" if path.name == "app.py" and path.parent == ROOT.parent else _part(path)
        if LAYERS[own] < LAYERS["train"]:
            assert not {part for part, _, _ in _imports(path)} & {"train", "bench"}, path
        if LAYERS[own] < LAYERS["ui"]:
            assert "gradio" not in _third_party(path), path


def test_medviz_imports_sit_at_the_top_of_their_file():
    # Only the launcher defers one: it sets gradio's environment (its temp folder), which gradio reads at import.
    nested = [f"{path.relative_to(ROOT.parent)}:{line}" for path in _modules() if path.name != "app.py"
              for _, line, inside in _imports(path) if inside]
    assert nested == []


def _part_graph() -> dict[str, set[str]]:
    """{part: the other parts its modules import}."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        own = _part(path)
        graph.setdefault(own, set()).update(part for part, _, _ in _imports(path) if part not in (own, "__init__"))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop between parts, each as the path that closes it (depth-first search)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_loop_and_only_loops():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_between_parts():
    assert _cycles(_part_graph()) == []
