"""The page as a whole: its endpoints, the launcher's defaults, and the limits every UI function keeps."""

import ast
from pathlib import Path

import pytest

import medviz.ui

UI = Path(medviz.ui.__file__).parent


def test_every_endpoint_has_an_api_name(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/generate_expect", "/traverse", "/frame_0", "/stop", "/select_model", "/phantom", "/edit",
            "/edit_load", "/edit_expect", "/edit_opacity", "/explain", "/explain_expect", "/explain_opacity"} <= names


def test_the_model_box_takes_bundled_names_only_and_says_nothing_of_other_paths(client):
    messages = []
    for path in ("/no/such/model", "/root", "/etc/passwd"):          # absent, a folder, a file: the same answer
        with pytest.raises(Exception) as raised:
            client.predict(model_name=path, api_name="/select_model")
        messages.append(str(raised.value).replace(path, "PATH"))
    assert len(set(messages)) == 1 and "is not a bundled model (cxr-phantom, skin-phantom)" in messages[0]
    assert "model_index" not in messages[0] and "folder" in messages[0]          # how to load one's own: --models-dir


def test_stop_endpoint_answers_at_once(client):
    assert "Stop requested" in client.predict(api_name="/stop")


def test_app_binds_locally_by_default():
    import app

    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.model == "cxr-phantom" and args.auth_file is None


def _functions():
    for path in sorted(UI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(UI), node


def test_no_ui_function_takes_more_than_8_parameters_or_runs_past_80_lines():
    too_many, too_long = [], []
    for path, node in _functions():
        arguments = node.args
        named = len(arguments.posonlyargs) + len(arguments.args) + len(arguments.kwonlyargs)
        if named > 8:
            too_many.append(f"{path}:{node.name} ({named})")
        if node.end_lineno - node.lineno + 1 > 80:
            too_long.append(f"{path}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not too_many and not too_long
    build = next(node for path, node in _functions() if str(path) == "layout.py" and node.name == "build_demo")
    assert build.end_lineno - build.lineno + 1 < 100                 # the page assembly
