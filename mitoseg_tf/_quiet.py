"""Keep TensorFlow's start-up chatter off the terminal; import this before anything imports TensorFlow.

    import mitoseg_tf._quiet  # noqa: F401  (first line of an entry point or notebook)

TensorFlow's C++ side prints several lines to file descriptor 2 while it is
imported ("All log messages before absl::InitializeLog() ...", the oneDNN note,
"Could not find cuda drivers", cpu_feature_guard), before any log level set
from Python applies: TF_CPP_MIN_LOG_LEVEL does not reach them. So the first
``import tensorflow`` runs with descriptor 2 captured, and whatever it printed
that is not one of those known lines is written back, so a real warning or a
crash message is never lost. TF_CPP_MIN_LOG_LEVEL=3 (unless already set) hides
what comes later ("failed call to cuInit" on machines without a GPU).

``MITOSEG_VERBOSE=1`` in the environment, or ``uninstall()`` before TensorFlow
is imported (``mitoseg --verbose``), leaves everything as TensorFlow prints it.
"""

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
VERBOSE_VARIABLE = "MITOSEG_VERBOSE"
# absl-formatted INFO/WARNING lines ("I0000 00:00:17... port.cc:153] oneDNN ..."), the line announcing
# them, the cpu_feature_guard continuation line, and the factory-registration errors printed on GPU
# machines whenever TensorFlow and another CUDA library are loaded in one process.
NOISE = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:\d\d"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions:"
    r"|E\d{4} .*Unable to register cu(?:DNN|FFT|BLAS) factory"
    r"|WARNING: Logging before InitGoogleLogging\(\))"
)


def is_noise(line):
    """Whether ``line`` is TensorFlow start-up chatter that ``mitoseg`` hides."""
    return bool(NOISE.match(line))


@contextlib.contextmanager
def _capture_fd2():
    """Run the block with descriptor 2 going to a file; afterwards replay every line that is not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(True) if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run with descriptor 2 captured."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            with _capture_fd2():
                self._loader.exec_module(module)
        finally:
            # Resource readers and reloads look at the module's loader: give them the real one.
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and wraps its loader; once only."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        uninstall()  # the wrapped import happens once; later lookups must not come back here
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


_FINDER = _QuietFinder()
_SET_BY_US = []


def install():
    """Hide the chatter of the next TensorFlow import (no-op once TensorFlow is imported, or when verbose)."""
    if os.environ.get(VERBOSE_VARIABLE, "").strip() not in ("", "0"):
        return
    if LOG_LEVEL_VARIABLE not in os.environ:
        os.environ[LOG_LEVEL_VARIABLE] = "3"
        _SET_BY_US.append(LOG_LEVEL_VARIABLE)
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall():
    """Stop hiding: TensorFlow imported from now on prints what it prints."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def verbose():
    """Everything TensorFlow logs, as if this module had never been imported (before TensorFlow is)."""
    uninstall()
    while _SET_BY_US:
        os.environ.pop(_SET_BY_US.pop(), None)


install()
