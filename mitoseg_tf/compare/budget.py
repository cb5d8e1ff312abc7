"""``--budget-minutes``: measure a few training steps per model, then pick epochs so the comparison fits.

The cost model of one run (seconds)::

    overhead + epochs * (steps_per_epoch * step + per_epoch)

``overhead`` (tracing the train / validation / predict graphs, scoring,
plots) is ``OVERHEAD_FIRST_STEPS`` first steps plus ``OVERHEAD_SECONDS``;
``per_epoch`` is what every epoch pays besides its steps: the checkpoint and
the backup written at its end (measured by saving the model) and the
validation pass (forward passes over the validation pixels, estimated from
the step time at a third of a training step per pixel).
"""

import math
import os
import tempfile
import time

import keras
import numpy as np

from mitoseg_tf.training import compile_model, output_roles
from mitoseg_tf.zoo import build, get_card

OVERHEAD_FIRST_STEPS = 1.5
OVERHEAD_SECONDS = 4.0


def measure_step(
    model_name, *, base_filters, model_args, batch_size, crop_size, loss, learning_rate, validation_pixels, steps=2
):
    """``(overhead s, step s, per-epoch s)`` of one model at the run's batch and crop size, on random data."""
    width = get_card(model_name).width_arguments(base_filters)
    model = build(model_name, input_shape=(None, None, 3), **{**width, **model_args})
    compile_model(model, loss=loss, learning_rate=learning_rate)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, crop_size, crop_size, 3)).astype("float32")
    mask = (rng.random((batch_size, crop_size, crop_size, 1)) < 0.05).astype("int32")
    roles = output_roles(model)
    y = (
        mask
        if len(roles) == 1
        else {
            n: (mask.reshape(batch_size, -1).max(1, keepdims=True).astype("float32") if r == "classification" else mask)
            for n, r in roles.items()
        }
    )
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - start) / steps
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        model.save(os.path.join(scratch, "m.keras"))  # the best checkpoint (at worst every epoch)
        model.save_weights(os.path.join(scratch, "m.weights.h5"))  # BackupAndRestore, every epoch
        saving = time.perf_counter() - start
    validation = step / 3.0 * validation_pixels / (batch_size * crop_size**2)
    keras.backend.clear_session()
    return OVERHEAD_FIRST_STEPS * first + OVERHEAD_SECONDS, step, saving + validation


def plan_epochs(seconds_left, runs, steps_per_epoch):
    """Epochs (and steps per epoch) for ``runs`` = [(overhead s, step s, per-epoch s), ...] to fit ``seconds_left``.

    Returns ``(epochs, steps_per_epoch, estimated seconds)``. When not even one
    epoch of ``steps_per_epoch`` fits, epochs is 1 and the steps are cut
    (never below 1: a run must train at all).
    """
    if not runs:
        return 1, steps_per_epoch, 0
    overhead = sum(r[0] for r in runs)
    step = sum(r[1] for r in runs)
    per_epoch = sum(r[2] for r in runs)
    left = max(seconds_left - overhead, 0.0)
    epochs = int(left // (steps_per_epoch * step + per_epoch))
    if epochs < 1:
        epochs, steps_per_epoch = 1, max(1, int((left - per_epoch) // step))
    estimate = overhead + epochs * (steps_per_epoch * step + per_epoch)
    return epochs, steps_per_epoch, math.ceil(estimate)
