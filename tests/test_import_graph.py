"""The package's import graph has no cycle and never imports upward (``tools/import_graph.py``).

Module-level and function-local imports both count: a function-local import
that dodges a cycle is still a cycle. The only upward imports allowed are
listed in ``tools/import_graph.py``'s ``ALLOWED``, each function-local and with
its reason.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))

import import_graph  # noqa: E402

IMPORTS = import_graph.read_imports()


def _lines(imports):
    return "\n".join(f"{i.source}:{i.line} -> {i.target}{' (local)' if i.local else ''}" for i in sorted(imports))


def test_no_module_imports_another_that_imports_it_back():
    assert import_graph.module_cycles(IMPORTS) == [], import_graph.report(IMPORTS)


def test_no_subpackages_import_each_other():
    assert import_graph.subpackage_cycles(IMPORTS) == [], import_graph.report(IMPORTS)


def test_no_import_runs_from_a_lower_floor_to_a_higher_one():
    refused = [imp for imp in import_graph.upward(IMPORTS) if not import_graph.is_allowed(imp)]
    assert not refused, "upward imports (move the code down, or the import up):\n" + _lines(refused)


def test_every_subpackage_has_a_floor():
    assert import_graph.unknown_subpackages(IMPORTS) == []
    assert set(import_graph.FLOORS) == set(import_graph.LOWER) | set(import_graph.HIGHER)
    assert max(import_graph.FLOORS[n] for n in import_graph.LOWER) < min(
        import_graph.FLOORS[n] for n in import_graph.HIGHER
    )


def test_every_allowed_upward_import_exists_is_function_local_and_says_why():
    for (source, target), reason in import_graph.ALLOWED.items():
        found = [i for i in IMPORTS if (i.source, i.target) == (source, target)]
        assert found, f"{source} -> {target} is allowed but no longer imported: drop it from ALLOWED"
        assert all(i.local for i in found), f"{source} -> {target} may run upward only inside a function"
        assert reason.strip()


def test_the_reader_sees_function_local_and_relative_imports(tmp_path):
    package = tmp_path / "mitoseg_tf"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    for path in ("__init__.py", "low/__init__.py", "high/__init__.py", "high/tool.py"):
        (package / path).write_text("")
    (package / "low" / "core.py").write_text("def f():\n    from mitoseg_tf.high import tool\n")
    (package / "high" / "run.py").write_text("from ..low.core import f\nfrom . import tool\n")
    found = {(i.source, i.target, i.local) for i in import_graph.read_imports(str(tmp_path))}
    assert found == {
        ("mitoseg_tf.low.core", "mitoseg_tf.high.tool", True),
        ("mitoseg_tf.high.run", "mitoseg_tf.low.core", False),
        ("mitoseg_tf.high.run", "mitoseg_tf.high.tool", False),
    }
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_graph.strongly_connected(edges) == [["a", "b", "c"]]
