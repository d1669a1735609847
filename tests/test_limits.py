"""No function in medviz/ takes more than 8 parameters or runs past 80 lines (issue 51). The functions listed in
``KNOWN`` are the ones still over at the time of writing: the list may only shrink (a listed function that now fits
fails the test too, so that it is taken off)."""

import ast
from pathlib import Path

import medviz

ROOT = Path(medviz.__file__).parent
MAX_PARAMETERS, MAX_LINES = 8, 80
#: Still over, to be split: "module path:function".
KNOWN = {
    "train/text2image.py:train_text2image",
}


def _parameters(node: ast.FunctionDef) -> int:
    arguments = node.args
    named = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return len([a for a in named if a.arg not in ("self", "cls")])


def over_the_limits() -> dict[str, str]:
    """{"path:function": why} for every function of the package past a limit."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines, parameters = node.end_lineno - node.lineno + 1, _parameters(node)
                if lines > MAX_LINES or parameters > MAX_PARAMETERS:
                    name = f"{path.relative_to(ROOT).as_posix()}:{node.name}"
                    found[name] = f"{lines} lines, {parameters} parameters"
    return found


def test_no_function_past_the_limits_but_the_known_ones():
    found = over_the_limits()
    assert {name: why for name, why in found.items() if name not in KNOWN} == {}
    assert sorted(KNOWN - set(found)) == []                  # fixed: take it off the list
