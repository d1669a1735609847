"""No function in medviz/ takes more than 8 parameters (self and cls not counted) or runs past 80 lines."""

import ast
from pathlib import Path

import medviz

ROOT = Path(medviz.__file__).parent
MAX_PARAMETERS, MAX_LINES = 8, 80


def _parameters(node: ast.FunctionDef) -> int:
    arguments = node.args
    named = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return len([a for a in named if a.arg not in ("self", "cls")])


def over_the_limits(root: Path = ROOT) -> dict[str, str]:
    """{"path:function": why} for every function of the package (under ``root``) past a limit."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines, parameters = node.end_lineno - node.lineno + 1, _parameters(node)
                if lines > MAX_LINES or parameters > MAX_PARAMETERS:
                    name = f"{path.relative_to(root).as_posix()}:{node.name}"
                    found[name] = f"{lines} lines, {parameters} parameters"
    return found


def test_no_function_past_the_limits():
    assert over_the_limits() == {}


def test_the_limits_scan_finds_a_long_and_a_wide_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    wide = "    def wide(self, a, b, c, d, e, f, g, h, i):\n        pass\n"
    fits = "    def fits(self, a, b, c, d, e, f, g, h):\n        pass\n"
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n\n\nclass A:\n{wide}\n{fits}")
    assert over_the_limits(tmp_path) == {"long.py:long": "81 lines, 0 parameters",
                                         "long.py:wide": "2 lines, 9 parameters"}
