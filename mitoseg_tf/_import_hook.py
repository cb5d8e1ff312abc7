"""Run code around the first import of one module, whoever imports it.

``_quiet`` captures TensorFlow's start-up lines with it; the zoo registers its
Keras layers, losses and metrics the moment Keras is imported, so that listing
the zoo imports no Keras while a ``.keras`` file still loads once the zoo is
imported. Imports nothing of the package.
"""

import contextlib
import importlib.abc
import sys


class _Loader(importlib.abc.Loader):
    """The module's own loader, its ``exec_module`` run inside the hook's context."""

    def __init__(self, loader, hook):
        self._loader = loader
        self._hook = hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._hook.remove()  # once: a reload or a second interpreter-level import runs plain
        try:
            with self._hook.around():
                self._loader.exec_module(module)
        finally:
            # Resource readers and reloads look at the module's loader: give them the real one.
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader

    def __getattr__(self, name):
        return getattr(self._loader, name)


class ImportHook(importlib.abc.MetaPathFinder):
    """Finds module ``name`` with the other finders and runs its import inside ``around()`` (a context manager)."""

    def __init__(self, name, around):
        self.name = name
        self.around = around

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        for finder in [f for f in sys.meta_path if f is not self]:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, self)
                return spec
        return None

    def install(self):
        """Wrap the next import of the module (nothing once it is imported)."""
        if self.name not in sys.modules and self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def after_import(name, callback):
    """Call ``callback()`` once module ``name`` is imported: now when it already is, else right after its import."""
    if name in sys.modules:
        callback()
        return

    @contextlib.contextmanager
    def then_call():
        yield
        callback()

    ImportHook(name, then_call).install()
