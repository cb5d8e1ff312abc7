"""Continuing a run after the process died: the state saved at every epoch end, and its restore.

What comes back on resume (``fit(..., resume=True)``):

- every model variable, including BatchNorm statistics and the random-seed
  state of dropout layers, and every optimizer variable (step count, Adam
  moments, the EMA of the weights), exactly as they were at the end of the last
  completed epoch;
- whether the EMA weights were swapped into the model at that moment (they are
  during the end-of-epoch checkpointing), so the swap back happens as it would have;
- the best monitored value of ``BestCheckpoint``, so a worse epoch cannot
  overwrite ``best.keras``;
- the data position: the training stream is infinite and seeded, so ``fit``
  skips the batches the finished epochs consumed (see ``skip_consumed``);
- the logs: rows written for epochs after the saved one (the interrupted
  epoch) are dropped from ``batch_loss.csv`` and ``history.csv``.

The state is two files in ``<run>/resume/``: ``state-<epoch>.npz`` (arrays) and
``state.json`` (which npz is current plus the small values). Each is written to a
temporary name and renamed, the npz first, so a kill at any moment leaves a
consistent pair. At most the interrupted epoch is lost.
"""

import csv
import json
import os

import keras
import numpy as np

STATE_DIR = "resume"
STATE_FILE = "state.json"


def _write_atomic(path, write):
    tmp = f"{path}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _optimizer_variables(model):
    return list(model.optimizer.variables)


def _describe(variables, optimizer=False):
    # an optimizer's variable paths start with its auto-numbered name (adam, adam_1, ...)
    return [[v.path.split("/", 1)[-1] if optimizer else v.path, list(v.shape)] for v in variables]


def save_state(directory, model, completed_epochs, extra=None):
    """Write the model and optimizer variables after ``completed_epochs`` epochs (atomically)."""
    os.makedirs(directory, exist_ok=True)
    model_vars, opt_vars = list(model.variables), _optimizer_variables(model)
    arrays = {f"m{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(model_vars)}
    arrays.update({f"o{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(opt_vars)})
    name = f"state-{completed_epochs}.npz"

    def write_arrays(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    _write_atomic(os.path.join(directory, name), write_arrays)
    record = {
        "completed_epochs": completed_epochs,
        "arrays": name,
        "model_variables": _describe(model_vars),
        "optimizer_variables": _describe(opt_vars, optimizer=True),
        **(extra or {}),
    }
    previous = read_state(directory)

    def write_record(tmp):
        with open(tmp, "w") as fh:
            json.dump(record, fh, indent=1)

    _write_atomic(os.path.join(directory, STATE_FILE), write_record)
    if previous and previous["arrays"] != name:
        try:
            os.remove(os.path.join(directory, previous["arrays"]))
        except FileNotFoundError:
            pass


def read_state(directory):
    """The saved record (a dict) or None when no epoch was completed yet."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def restore_state(directory, model):
    """Assign the saved variables to ``model`` and its optimizer; return the record (None if none saved).

    Raises ``ValueError`` when the saved variables do not match the model's
    (a different architecture or optimizer than the one that wrote them).
    """
    record = read_state(directory)
    if record is None:
        return None
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    model_vars, opt_vars = list(model.variables), _optimizer_variables(model)
    for kind, variables in (("model_variables", model_vars), ("optimizer_variables", opt_vars)):
        saved, now = record[kind], _describe(variables, optimizer=kind == "optimizer_variables")
        if saved != now:
            diff = next((f"{a} vs {b}" for a, b in zip(saved, now) if a != b), f"{len(saved)} vs {len(now)} variables")
            raise ValueError(
                f"The resume state in {directory!r} does not match this model's {kind.replace('_', ' ')} "
                f"(saved vs now: {diff}); resume with the model and optimizer that wrote it."
            )
    with np.load(os.path.join(directory, record["arrays"])) as arrays:
        for i, v in enumerate(model_vars):
            v.assign(arrays[f"m{i}"])
        for i, v in enumerate(opt_vars):
            v.assign(arrays[f"o{i}"])
    return record


def truncate_epoch_log(path, completed_epochs, epoch_column="epoch"):
    """Drop the rows of a CSV log that belong to epochs >= ``completed_epochs`` (the lost ones)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    column = rows[0].index(epoch_column)
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[column])) < completed_epochs]
    if completed_epochs == 0:
        kept = []

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(kept)

    _write_atomic(path, write)


def skip_consumed(train_data, completed_epochs, steps_per_epoch):
    """``train_data`` positioned where the run stopped: past ``completed_epochs * steps_per_epoch`` batches.

    With ``steps_per_epoch`` Keras draws every epoch from one iterator over the
    (infinite) stream, so the finished epochs consumed exactly that many
    batches. Without it each epoch re-iterates the data from the start and
    nothing needs skipping.
    """
    if not completed_epochs or steps_per_epoch is None:
        return train_data
    if not hasattr(train_data, "skip"):
        raise ValueError(
            "resume needs the training data as a tf.data.Dataset (to skip the batches the finished "
            f"epochs consumed) when steps_per_epoch is set; got {type(train_data).__name__}."
        )
    return train_data.skip(completed_epochs * steps_per_epoch)


class ResumeState(keras.callbacks.Callback):
    """Save the resume state at the end of every epoch (place it after the other callbacks).

    ``best_checkpoint`` and ``ema_swap`` are the ``BestCheckpoint`` and
    ``SwapEMAWeights`` callbacks of the same run, whose state is saved with it.
    """

    def __init__(self, directory, best_checkpoint=None, ema_swap=None):
        super().__init__()
        self.directory = directory
        self.best_checkpoint = best_checkpoint
        self.ema_swap = ema_swap

    def on_epoch_end(self, epoch, logs=None):
        extra = {"ema_in_model": bool(getattr(self.ema_swap, "_ema_weights_in_model", False))}
        if self.best_checkpoint is not None:
            extra["best"] = {"value": self.best_checkpoint.best, "epoch": self.best_checkpoint.best_epoch}
        save_state(self.directory, self.model, epoch + 1, extra)

    def apply(self, record):
        """Put the saved callback state back (after ``restore_state``)."""
        if self.ema_swap is not None:
            self.ema_swap._ema_weights_in_model = bool(record.get("ema_in_model", False))
        if self.best_checkpoint is not None and record.get("best"):
            self.best_checkpoint.best = record["best"]["value"]
            self.best_checkpoint.best_epoch = record["best"]["epoch"]
