"""Every zoo model saved here loads in a fresh process through ``load_checkpoint`` alone.

In-process round trips pass even when a custom layer is only registered
because some earlier import happened to define it; a new process is what
``mitoseg evaluate CHECKPOINT`` sees.
"""

import os
import subprocess
import sys

import numpy as np
import time_limits

from mitoseg_tf.zoo import build, get_card, list_models

SCRIPT = """
import sys, numpy as np
from mitoseg_tf.zoo.checkpoint import load_checkpoint
for path in sys.argv[1:]:
    model = load_checkpoint(path)
    x = np.load(path + ".x.npy")
    out = model(x, training=False)  # eager: tracing a graph per model would cost more than the test checks
    out = out["mask"] if isinstance(out, dict) else out
    if isinstance(out, (list, tuple)):
        names = [t._keras_history.operation.name for t in model.outputs]
        out = out[names.index("mask")]
    np.save(path + ".y.npy", np.asarray(out))
print("OK")
"""


def test_all_models_load_in_a_fresh_process(tmp_path):
    budget = time_limits.Budget()  # the saves below count against the same per-test limit
    paths, expected = [], {}
    for name in list_models():
        model = build(name, **get_card(name).tiny)
        size = model.input_shape[1] or 32
        x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
        path = os.path.join(tmp_path, f"{name}.keras")
        model.save(path)
        np.save(path + ".x.npy", x)
        out = model(x, training=False)
        if isinstance(out, dict):
            out = out["mask"]
        elif isinstance(out, (list, tuple)):
            out = out[[t._keras_history.operation.name for t in model.outputs].index("mask")]
        expected[path] = np.asarray(out)
        paths.append(path)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *paths], capture_output=True, text=True, timeout=budget.left())
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in paths:
        np.testing.assert_allclose(np.load(path + ".y.npy"), expected[path], rtol=1e-5, atol=1e-6)
