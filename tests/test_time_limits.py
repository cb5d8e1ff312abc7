"""Every subprocess a test waits on has a limit below pytest.ini's per-test timeout (see time_limits)."""

import ast
import glob
import os

import time_limits

TESTS = os.path.dirname(os.path.abspath(__file__))
BLOCKING = {"run", "check_output", "check_call", "call", "communicate"}


def _timeouts(tree):
    """(line, what) for each literal timeout and each blocking subprocess call without one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords}
            value = keywords.get("timeout")
            if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)):
                yield node.lineno, value.value
            func = node.func
            is_subprocess = (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "subprocess"
                and func.attr in BLOCKING
            )
            if is_subprocess and "timeout" not in keywords:
                yield node.lineno, None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [a.arg for a in node.args.args[len(node.args.args) - len(node.args.defaults) :]]
            for name, default in zip(names, node.args.defaults):
                if name == "timeout" and isinstance(default, ast.Constant):
                    yield node.lineno, default.value


def test_subprocess_limits_run_out_before_the_per_test_timeout():
    limit = time_limits.per_test_timeout_s()
    offenders = []
    for path in sorted(glob.glob(os.path.join(TESTS, "**", "*.py"), recursive=True)):
        with open(path) as fh:
            tree = ast.parse(fh.read(), path)
        for line, value in _timeouts(tree):
            if value is None or value >= limit:
                offenders.append(f"{os.path.relpath(path, TESTS)}:{line}: timeout={value}")
    assert not offenders, offenders
    assert 0 < time_limits.SUBPROCESS_S < limit


def test_the_check_catches_a_long_or_missing_limit():
    source = "import subprocess\nsubprocess.run(['x'], timeout=900)\nsubprocess.run(['x'])\ndef f(timeout=600): pass\n"
    assert sorted(_timeouts(ast.parse(source)), key=str) == sorted([(2, 900), (3, None), (4, 600)], key=str)
