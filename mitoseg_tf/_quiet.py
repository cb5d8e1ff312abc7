"""Keep TensorFlow's start-up chatter off the terminal; import this before anything imports TensorFlow.

    import mitoseg_tf._quiet  # noqa: F401  (first line of an entry point or notebook)

TensorFlow's C++ side prints several lines to file descriptor 2 while it is
imported ("All log messages before absl::InitializeLog() ...", the oneDNN note,
"Could not find cuda drivers", cpu_feature_guard), before any log level set
from Python applies: TF_CPP_MIN_LOG_LEVEL does not reach them. So the first
``import tensorflow`` runs with descriptor 2 captured, and whatever it printed
that is not one of those known lines is written back, so a real warning or a
crash message is never lost. The first look at the devices, where "failed call to
cuInit" comes from on machines without a GPU, is made inside the same capture.
Later, TF_CPP_MIN_LOG_LEVEL=2 (unless already set) hides TensorFlow's INFO and
WARNING lines and keeps its ERROR lines (out of memory, a failed kernel): they
reach stderr as TensorFlow writes them.

``import mitoseg_tf`` installs this, so Python users get the same quiet start.

``MITOSEG_VERBOSE=1`` in the environment, or ``uninstall()`` before TensorFlow
is imported (``mitoseg --verbose``), leaves everything as TensorFlow prints it.
"""

import contextlib
import os
import re
import sys
import tempfile

from mitoseg_tf._import_hook import ImportHook

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
VERBOSE_VARIABLE = "MITOSEG_VERBOSE"
# Hides INFO (0) and WARNING (1) lines logged after start-up, keeps ERROR (2) and FATAL ones.
QUIET_LOG_LEVEL = "2"
# absl-formatted INFO/WARNING lines ("I0000 00:00:17... port.cc:153] oneDNN ..."), the line announcing
# them, the cpu_feature_guard continuation line, and the factory-registration errors printed on GPU
# machines whenever TensorFlow and another CUDA library are loaded in one process, and the cuInit
# failure of machines without a GPU. Only these are dropped, and only while TensorFlow starts.
NOISE = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:\d\d"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions:"
    r"|E\d{4} .*Unable to register cu(?:DNN|FFT|BLAS) factory"
    r"|E\d{4} .*failed call to cuInit"
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


@contextlib.contextmanager
def _quiet_start_up():
    """The import of TensorFlow and its first look at the devices, with descriptor 2 captured."""
    with _capture_fd2():
        yield
        # The first device query prints "failed call to cuInit" on a machine without a GPU (an ERROR line
        # of start-up, not of the user's work): made here, it is captured with the rest.
        sys.modules["tensorflow"].config.list_physical_devices()


_HOOK = ImportHook("tensorflow", _quiet_start_up)
_SET_BY_US = []


def install():
    """Hide the chatter of the next TensorFlow import (no-op once TensorFlow is imported, or when verbose)."""
    if os.environ.get(VERBOSE_VARIABLE, "").strip() not in ("", "0"):
        return
    if LOG_LEVEL_VARIABLE not in os.environ:
        os.environ[LOG_LEVEL_VARIABLE] = QUIET_LOG_LEVEL
        _SET_BY_US.append(LOG_LEVEL_VARIABLE)
    _HOOK.install()


def uninstall():
    """Stop hiding: TensorFlow imported from now on prints what it prints."""
    _HOOK.remove()


def verbose():
    """Everything TensorFlow logs, as if this module had never been imported (before TensorFlow is)."""
    uninstall()
    while _SET_BY_US:
        os.environ.pop(_SET_BY_US.pop(), None)


install()
