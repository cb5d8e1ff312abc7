"""The import graph of ``mitoseg_tf``: layers, cycles and imports that run upward.

Reads every module's imports with ``ast`` (nothing is imported or run): the
module-level ones and those inside functions, each marked ``local`` when it sits
in a function or method body. Prints the subpackage graph floor by floor, the
cycles (strongly connected components) between modules and between
subpackages, the imports from a lower floor to a higher one, and the
function-local imports.

    python tools/import_graph.py              # the whole report
    python tools/import_graph.py --local      # also list every function-local import
    python tools/import_graph.py --check      # exit 1 on a cycle or an upward import not allowed below

``tests/test_import_graph.py`` runs the same check.
"""

import argparse
import ast
import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mitoseg_tf"

# The floors, lowest first. A module may import from its own floor and those below; never from above.
# The zoo and what deploys it (layers .. zoo) run without TensorFlow; training, whole slides, the deployable
# detector, export, the comparison and the command line are built on top of them.
LOWER = (
    "config",
    "defaults",
    "errors",
    "_import_hook",
    "_quiet",
    "layers",
    "losses",
    "metrics",
    "models",
    "inference",
    "data",
    "detection",
    "zoo",
)
HIGHER = ("training", "slides", "detector", "export", "compare", "cli")
FLOORS = {
    # lower floors
    "config": 0,  # plain dataclasses: `mitoseg train --help` reads their defaults without TensorFlow
    "_import_hook": 0,  # runs code around one module's first import; imports nothing of the package
    "_quiet": 0,  # silences TensorFlow's C++ start-up logs; imports only _import_hook
    "defaults": 0,  # the defaults the CLI and the library share; imports nothing
    "errors": 0,  # which errors are the user's and how a failure reads; imports nothing
    "layers": 0,
    "losses": 0,
    "metrics": 0,
    "models": 1,
    "inference": 2,
    "data": 3,  # resolution resampling is inference.resample's
    "detection": 3,
    "zoo": 4,
    # higher floors
    "training": 5,
    "slides": 5,  # takes a detector object; does not import detector/
    "detector": 6,
    "export": 7,
    "compare": 7,
    "cli": 8,
}

# Imports allowed to run upward, each function-local and with its reason: (importing module, imported module) -> why.
ALLOWED = {
    ("mitoseg_tf.detector.detector", "mitoseg_tf.export.detector"): (
        "export is TensorFlow-only: the detector imports it only when asked to export, so it runs on any backend"
    ),
}

Import = collections.namedtuple("Import", "source target line local")


def module_name(path, root=ROOT):
    relative = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
    if relative[-1] == "__init__":
        relative = relative[:-1]
    return ".".join(relative)


def package_files(root=ROOT):
    """``{module name: path}`` of every module of the package."""
    files = {}
    for folder, dirs, names in os.walk(os.path.join(root, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                files[module_name(path, root)] = path
    return files


def _is_package(module, modules):
    return any(other.startswith(module + ".") for other in modules)


def _resolve(module, node, modules):
    """The package modules an ``import`` / ``from ... import`` node names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        # a package's __init__ is its own anchor; a module's anchor is its package
        anchor = parts if _is_package(module, modules) else parts[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        targets.append(submodule if submodule in modules else base)
    return targets


class _Visitor(ast.NodeVisitor):
    def __init__(self, module, modules):
        self.module, self.modules, self.depth, self.imports, self.statements = module, modules, 0, [], []

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _import(self, node):
        self.statements.append(Import(self.module, None, node.lineno, self.depth > 0))
        for target in _resolve(self.module, node, self.modules):
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                # ``from mitoseg_tf.zoo import registry as x`` and ``import mitoseg_tf.zoo.registry`` name the module
                while target not in self.modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                imp = Import(self.module, target, node.lineno, self.depth > 0)
                if imp not in self.imports:  # one per statement, however many names it takes
                    self.imports.append(imp)

    visit_Import = visit_ImportFrom = _import


def _visit(root):
    files = package_files(root)
    for module, path in files.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        visitor = _Visitor(module, set(files))
        visitor.visit(tree)
        yield visitor


def read_imports(root=ROOT):
    """Every import of one package module by another (self-imports left out), one per statement and target."""
    return [imp for visitor in _visit(root) for imp in visitor.imports if imp.target != visitor.module]


def import_statements(root=ROOT):
    """Every ``import`` / ``from ... import`` statement of the package (of any module), ``target`` None."""
    return [imp for visitor in _visit(root) for imp in visitor.statements]


def subpackage(module):
    """``mitoseg_tf.zoo.registry`` -> ``zoo``; ``mitoseg_tf.losses`` -> ``losses``; the package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def strongly_connected(edges):
    """The strongly connected components with more than one node of ``{node: set(successors)}`` (Tarjan)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    nodes = sorted(set(edges) | {n for targets in edges.values() for n in targets})

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for node in nodes:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components)


def is_allowed(imp):
    return (imp.source, imp.target) in ALLOWED and imp.local


def module_cycles(imports):
    edges = collections.defaultdict(set)
    for imp in imports:
        if not is_allowed(imp):
            edges[imp.source].add(imp.target)
    return strongly_connected(edges)


def subpackage_cycles(imports):
    edges = collections.defaultdict(set)
    for imp in imports:
        a, b = subpackage(imp.source), subpackage(imp.target)
        if a and b and a != b and not is_allowed(imp):
            edges[a].add(b)
    return strongly_connected(edges)


def upward(imports):
    """Imports from a lower floor to a higher one, allowed ones included (see ``is_allowed``)."""
    out = []
    for imp in imports:
        a, b = subpackage(imp.source), subpackage(imp.target)
        if a in FLOORS and b in FLOORS and FLOORS[a] < FLOORS[b]:
            out.append(imp)
    return out


def problems(imports):
    """``(module cycles, subpackage cycles, upward imports not allowed)``: what ``--check`` refuses."""
    return (
        module_cycles(imports),
        subpackage_cycles(imports),
        [imp for imp in upward(imports) if not is_allowed(imp)],
    )


def unknown_subpackages(imports, root=ROOT):
    """Subpackages and top-level modules the floors do not place (a new one needs a floor in ``FLOORS``)."""
    names = {subpackage(m) for imp in imports for m in (imp.source, imp.target)} | set(
        map(subpackage, package_files(root))
    )
    return sorted(names - set(FLOORS) - {""})


def report(imports, show_local=False, statements=None):
    lines = []
    graph = collections.defaultdict(collections.Counter)
    for imp in imports:
        a, b = subpackage(imp.source), subpackage(imp.target)
        if a != b and a and b:
            graph[a][b] += 1
    lines.append("SUBPACKAGES, highest floor first (-> what each imports, with the number of imports)")
    for name in sorted(FLOORS, key=lambda n: (-FLOORS[n], n)):
        targets = ", ".join(f"{t} {n}" for t, n in sorted(graph[name].items()))
        lines.append(f"  floor {FLOORS[name]}  {name:10s} -> {targets or '-'}")
    unknown = unknown_subpackages(imports)
    if unknown:
        lines.append(f"  without a floor (add them to FLOORS): {', '.join(unknown)}")

    cycles, package_cycles, refused = problems(imports)
    lines.append(f"\nMODULE CYCLES: {len(cycles)}")
    for component in cycles:
        members = set(component)
        lines.append(f"  {len(component)} modules: {', '.join(component)}")
        for imp in sorted(imports):
            if imp.source in members and imp.target in members and not is_allowed(imp):
                lines.append(f"    {imp.source}:{imp.line} -> {imp.target}{'  (local)' if imp.local else ''}")
    lines.append(f"\nSUBPACKAGE CYCLES: {len(package_cycles)}")
    for component in package_cycles:
        lines.append(f"  {' <-> '.join(component)}")

    up = upward(imports)
    lines.append(f"\nUPWARD IMPORTS: {len(refused)} refused, {len(up) - len(refused)} allowed")
    for imp in sorted(up):
        reason = ALLOWED.get((imp.source, imp.target)) if is_allowed(imp) else None
        where = "local" if imp.local else "module level"
        lines.append(f"  {imp.source}:{imp.line} -> {imp.target} ({where}){'  ALLOWED: ' + reason if reason else ''}")

    local = [imp for imp in imports if imp.local]
    lines.append(f"\nFUNCTION-LOCAL IMPORTS OF PACKAGE MODULES: {len(local)} (of {len(imports)} imports)")
    if statements is not None:
        lines.append(
            f"FUNCTION-LOCAL IMPORT STATEMENTS OF ANY MODULE: {sum(s.local for s in statements)} "
            f"(of {len(statements)} statements)"
        )
    if show_local:
        for imp in sorted(local):
            lines.append(f"  {imp.source}:{imp.line} -> {imp.target}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=ROOT, help="the repository root (default: this checkout)")
    parser.add_argument("--local", action="store_true", help="list every function-local import")
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or a refused upward import")
    args = parser.parse_args(argv)
    imports = read_imports(args.root)
    print(report(imports, show_local=args.local, statements=import_statements(args.root)))
    if args.check:
        cycles, package_cycles, refused = problems(imports)
        return 1 if cycles or package_cycles or refused or unknown_subpackages(imports) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
