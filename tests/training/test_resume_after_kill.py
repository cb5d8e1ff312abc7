"""A run SIGKILLed mid-epoch and resumed ends bitwise equal to an uninterrupted run.

Two training processes start together with the same seed and op determinism
(the default): one runs to the end, one is killed in the middle of its second
epoch (a callback in it writes a marker file at that batch and waits for the
kill). ``train_run`` with ``resume=True`` (what ``mitoseg train --resume``
calls) then finishes the killed run. Everything a
run writes must be identical: per-batch losses, per-epoch history, the metrics,
the best checkpoint's weights and the final weights, optimizer moments and EMA.
The killed run's first epoch and its resumed rest come from two processes
other than the reference's, so this is also the test that two runs with one
seed give identical metrics.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import time_limits

from mitoseg_tf.zoo.checkpoint import load_checkpoint

ARGS = dict(
    model="unet",
    base_filters=4,
    epochs=3,
    steps_per_epoch=3,
    batch_size=4,
    crop_size=32,
    precision="float32",
    seed=7,
    num_examples=4,
    model_args={"depth": 2},
)
KILL_EPOCH, KILL_BATCH = 1, 2  # 0-based: the third batch of the second epoch

CHILD = """
import json, os, sys, time
import keras
from mitoseg_tf.training.run import RunConfig, train_run

config, marker = json.loads(sys.argv[1]), sys.argv[2]

class WaitForKill(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if marker and self._epoch == %d and batch == %d:
            with open(marker, "w") as fh:
                fh.write("reached")
            time.sleep(600)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

train_run(RunConfig(**config), log=lambda *a: None, callbacks=[WaitForKill()])
""" % (KILL_EPOCH, KILL_BATCH)  # noqa: UP031 -- the script has braces of its own, so not str.format


def _start(tmp_path, name, marker="", **extra):
    config = dict(ARGS, output_dir=str(tmp_path), run_name=name, **extra)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(config), marker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err[-3000:]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _final_state(run_dir):
    with open(os.path.join(run_dir, "resume", "state.json")) as fh:
        record = json.load(fh)
    with np.load(os.path.join(run_dir, "resume", record["arrays"])) as arrays:
        return record, {k: arrays[k] for k in arrays.files}


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    marker = str(tmp_path / "reached")
    budget = time_limits.Budget()  # three runs in turn, one per-test limit
    procs = [_start(tmp_path, "reference"), _start(tmp_path, "killed", marker)]
    try:
        while not os.path.exists(marker):
            assert procs[1].poll() is None, procs[1].communicate()[1][-3000:]
            assert budget.left() > 1, "the run to be killed never reached its kill point"
            time.sleep(0.2)
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(timeout=30)
        killed = tmp_path / "killed"
        with open(killed / "resume" / "state.json") as fh:
            assert json.load(fh)["completed_epochs"] == KILL_EPOCH  # only the interrupted epoch is lost
        assert not (killed / "metrics.json").exists()

        _finish(_start(tmp_path, "killed", resume=True), budget.left())
        _finish(procs[0], budget.left())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    reference = tmp_path / "reference"
    with open(reference / "config.json") as fh:
        record = json.load(fh)
    import keras
    import tensorflow as tf

    assert (
        record["seed"] == ARGS["seed"]
        and record["deterministic"] is True
        and record["model_args"] == ARGS["model_args"]
    )
    assert record["versions"]["tensorflow"] == tf.__version__ and record["versions"]["keras"] == keras.__version__
    assert record["versions"]["numpy"] == np.__version__ and record["versions"]["mitoseg_tf"]
    assert "data_split" in record  # filled by mitoseg_tf.data
    for other in ("killed",):
        run = tmp_path / other
        # every batch of every epoch, exactly once, with bitwise-equal losses (printed to 6 digits)
        assert _rows(run / "batch_loss.csv") == _rows(reference / "batch_loss.csv"), other
        assert len(_rows(reference / "batch_loss.csv")) == 1 + ARGS["epochs"] * ARGS["steps_per_epoch"]
        assert _rows(run / "history.csv") == _rows(reference / "history.csv"), other
        with open(run / "metrics.json") as a, open(reference / "metrics.json") as b:
            got, want = json.load(a), json.load(b)
        got.pop("train_seconds"), want.pop("train_seconds")
        assert got == want, other
        best_got = load_checkpoint(str(run / "best.keras")).get_weights()
        best_want = load_checkpoint(str(reference / "best.keras")).get_weights()
        assert all(np.array_equal(g, w) for g, w in zip(best_got, best_want, strict=True)), other
        record_got, state_got = _final_state(run)
        record_want, state_want = _final_state(reference)
        assert record_got["completed_epochs"] == ARGS["epochs"]
        assert record_got["best"] == record_want["best"], other
        # model variables, dropout seed state, Adam moments and iteration count, EMA
        assert sorted(state_got) == sorted(state_want)
        for key in state_want:
            assert np.array_equal(state_got[key], state_want[key]), (other, key)
