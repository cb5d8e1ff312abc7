"""Run a script on the JAX backend in a subprocess where ``import tensorflow`` fails.

The zoo, inference and detection code must run without TensorFlow; any import
of it hiding in that code makes the script fail. The script prints one line
``REPORT<json>``, which ``run`` returns as a dict.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import time_limits

BLOCK_TENSORFLOW = """
import importlib.abc, json, sys

class BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("tensorflow is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTensorFlow())
"""


def need(module):
    """Fail unless ``module`` (a declared test dependency) is installed, without importing it here.

    ``pytest.importorskip`` imports it: a JAX loaded into a pytest worker registers exit handlers that
    print a KeyboardInterrupt traceback, and its C++ lines, after pytest's summary when the worker is
    stopped. The backends run in the subprocesses only.
    """
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is a test dependency and is not installed: pip install -e .[test]")


def run(body, timeout=time_limits.SUBPROCESS_S):
    """Run ``body`` (after the TensorFlow blocker) with KERAS_BACKEND=jax; its REPORT dict."""
    # XLA's CPU backend optimisation passes cost more than these one-step scripts run (a tiny
    # MCSA-Unet's jitted train step: 14 s to compile at the default level, 11 s at 0); same math.
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip())
    script = BLOCK_TENSORFLOW + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT"))
    return json.loads(line[len("REPORT") :])
