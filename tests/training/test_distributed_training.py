"""Data-parallel training on CPU gives the single-device loss trajectory.

- MirroredStrategy over two logical CPU devices (configured before TensorFlow
  starts, so in a subprocess; the single-device reference runs in another);
- MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1, one CPU
  replica each, configured by TF_CONFIG.

Same seed, same initial weights, same global batch of 4 (2 per replica), a
model without BatchNorm (BatchNorm statistics are per replica, as in Keras, so
they legitimately differ from one device's). Per-batch training losses and
per-epoch validation metrics must agree to TOLERANCE: float32 sums of two
half-batch gradients differ from one whole-batch sum only by rounding.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import time_limits

TOLERANCE = dict(rtol=1e-4, atol=1e-5)
EPOCHS, STEPS = 2, 3

SCRIPT = """
import json, os, sys
mode, out, run_dir = sys.argv[1], sys.argv[2], sys.argv[3]
import tensorflow as tf
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from mitoseg_tf.training import compile_model, distribute, fit
from mitoseg_tf.zoo import build

# multi_worker configures collective ops, which must happen before TensorFlow runs any op
# (importing the data pipeline already creates constants)
strategies = {mode: distribute.make_strategy(mode)}  # None for "none"
from mitoseg_tf.data.pipeline import make_pipeline
from mitoseg_tf.data.sources import load_source

EPOCHS, STEPS = %d, %d

class Trajectory(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches, self.epochs = [], []
    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(float(logs["loss"]))
    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({k: float(v) for k, v in logs.items()})

def train(strategy_name, run_dir=None):
    strategy = strategies.get(strategy_name) or distribute.make_strategy(strategy_name)
    keras.utils.set_random_seed(5)
    with distribute.scope(strategy):
        model = build("unet", base_filters=4, depth=2, norm=None, dropout=0.0, input_shape=(None, None, 3))
        compile_model(model)
    train_ds = make_pipeline(load_source("synthetic", "train", num_examples=4, size=64, seed=5),
                             training=True, batch_size=4, crop_size=32, seed=5)
    val_ds = make_pipeline(load_source("synthetic", "validation", num_examples=4, size=64, seed=5),
                           training=False, batch_size=2)
    trajectory = Trajectory()
    fit(model, train_ds, val_ds, epochs=EPOCHS, steps_per_epoch=STEPS, strategy=strategy, run_dir=run_dir,
        callbacks=[trajectory], verbose=0)
    return {"replicas": distribute.num_replicas(strategy), "chief": distribute.is_chief(strategy),
            "batches": trajectory.batches, "epochs": trajectory.epochs}

result = {mode: train(mode, run_dir or None)}
if mode == "mirrored":  # a global batch of 3 cannot be split over the two replicas
    from mitoseg_tf.training.run import RunConfig, train_run
    try:
        train_run(RunConfig(model="unet", base_filters=4, batch_size=3, strategy="mirrored",
                            output_dir=os.path.dirname(out), run_name="odd", num_examples=2))
        result["odd_batch_error"] = None
    except ValueError as err:
        result["odd_batch_error"] = str(err)
    result["odd_batch_folder"] = os.path.exists(os.path.join(os.path.dirname(out), "odd"))
with open(out, "w") as fh:
    json.dump(result, fh)
""" % (EPOCHS, STEPS)  # noqa: UP031 -- the script has braces of its own, so not str.format


def _run_script(args, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait(proc, timeout):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"training subprocess timed out after {timeout} s: {err[-2000:]}")
    assert proc.returncode == 0, err[-4000:]


def _assert_same_trajectory(got, want):
    assert len(got["batches"]) == len(want["batches"]) == EPOCHS * STEPS
    np.testing.assert_allclose(got["batches"], want["batches"], **TOLERANCE)
    difference = np.abs(np.subtract(got["batches"], want["batches"]))
    print(f"max |loss difference| {difference.max():.3g}, relative {(difference / np.abs(want['batches'])).max():.3g}")
    assert len(got["epochs"]) == EPOCHS
    for g, w in zip(got["epochs"], want["epochs"]):
        assert sorted(g) == sorted(w)
        for key in w:  # training and validation loss and every metric, reduced over replicas
            np.testing.assert_allclose(g[key], w[key], err_msg=key, **TOLERANCE)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start the single-device, mirrored and two worker processes together (more share of a busy CPU)."""
    tmp = tmp_path_factory.mktemp("distributed")
    budget = time_limits.Budget()  # four processes waited on in turn, one per-test limit
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    outs = {"mirrored": str(tmp / "mirrored" / "result.json"), "none": str(tmp / "single.json")}
    os.makedirs(tmp / "mirrored")
    procs = [_run_script(["mirrored", outs["mirrored"], ""]), _run_script(["none", outs["none"], ""])]
    try:
        for index in range(2):
            env = dict(
                os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            )
            outs[f"worker{index}"] = str(tmp / f"worker{index}.json")
            procs.append(_run_script(["multi_worker", outs[f"worker{index}"], str(tmp / "run")], env=env))
        for proc in procs:
            _wait(proc, timeout=budget.left())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = {}
    for name, out in outs.items():
        with open(out) as fh:
            results[name] = json.load(fh)
    return tmp, results


@pytest.fixture(scope="module")
def mirrored(runs):
    return {**runs[1]["mirrored"], "single": runs[1]["none"]["none"]}


def test_mirrored_two_cpu_replicas_follow_the_single_device_trajectory(mirrored):
    assert mirrored["single"]["replicas"] == 1
    assert mirrored["mirrored"]["replicas"] == 2
    _assert_same_trajectory(mirrored["mirrored"], mirrored["single"])
    # the loss moved, so agreeing is not trivial
    assert mirrored["single"]["batches"][0] != mirrored["single"]["batches"][-1]


def test_a_global_batch_that_does_not_split_over_the_replicas_fails_before_training(mirrored):
    assert "global batch size 3 does not split evenly over 2 replicas" in mirrored["odd_batch_error"]
    assert mirrored["odd_batch_folder"] is False


def test_two_worker_processes_follow_the_single_device_trajectory_and_only_the_chief_writes(runs):
    tmp, results = runs
    workers = [results[f"worker{i}"]["multi_worker"] for i in range(2)]
    assert [w["chief"] for w in workers] == [True, False]
    for worker in workers:
        assert worker["replicas"] == 2
        _assert_same_trajectory(worker, results["none"]["none"])
    # one writer: one history row per epoch, one batch-loss row per step
    run_dir = tmp / "run"
    with open(run_dir / "history.csv") as fh:
        assert len(fh.read().strip().splitlines()) == 1 + EPOCHS
    with open(run_dir / "batch_loss.csv") as fh:
        assert len(fh.read().strip().splitlines()) == 1 + EPOCHS * STEPS
    assert (run_dir / "best.keras").is_file()
    assert sorted(os.listdir(tmp)) == ["mirrored", "run", "single.json", "worker0.json", "worker1.json"]
