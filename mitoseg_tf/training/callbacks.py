"""Callbacks the shared ``fit`` installs: best checkpoint (atomic), per-batch loss log, one line per epoch."""

import csv
import math
import os
import time

import keras


def without_training_state(model):
    """A copy of ``model`` (architecture and weights) without its optimizer and compile settings.

    What inference and evaluation load: ``model.save`` of a compiled model also
    writes the optimizer's variables (Adam's two moments and the EMA copy of
    every weight: three times the network) and ignores ``include_optimizer`` for
    ``.keras`` files. A resumed run reads its optimizer from ``resume/``.
    """
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model whenever ``monitor`` improves, never leaving a half-written file.

    ``monitor=None``: no score ranks the epochs (``fit`` without validation
    data), so every epoch's weights replace the last: the file holds the final epoch.

    The model is written to a temporary ``.keras`` file beside the target and
    renamed over it, so a crash mid-save keeps the previous best checkpoint.
    Placed after ``SwapEMAWeights`` it saves the EMA weights, which are the
    ones validation scored. The file holds the network and its weights only
    (``without_training_state``): no optimizer state, no loss or metrics.
    """

    def __init__(self, path, monitor, mode="max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}.")
        if not str(path).endswith(".keras"):
            raise ValueError(f"Checkpoint path must end in .keras; got {path!r}.")
        self.path = str(path)
        self.monitor = monitor
        self.mode = mode
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = None

    def _improved(self, value):
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor is not None:
            if self.monitor not in logs:
                raise KeyError(
                    f"BestCheckpoint monitors {self.monitor!r}, which training did not log; "
                    f"logged values: {', '.join(sorted(logs))}."
                )
            value = float(logs[self.monitor])
            if math.isnan(value) or not self._improved(value):
                return
            self.best = value
        self.best_epoch = epoch
        tmp = self.path[: -len(".keras")] + ".tmp.keras"
        try:
            without_training_state(self.model).save(tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def read_epoch_log(path):
    """``history.csv`` as a list of ``{column: number}`` rows, the cells of epochs that did not log a value left out.

    Keras' ``CSVLogger`` adds the ``val_`` columns of every metric even to a run that never validated, and
    writes ``NA`` in them; those are not values.
    """

    def number(key, value):
        return int(value) if key == "epoch" else float(value)

    with open(path, newline="") as fh:
        return [{k: number(k, v) for k, v in row.items() if v not in ("NA", "", None)} for row in csv.DictReader(fh)]


class BatchLossLogger(keras.callbacks.Callback):
    """Append one CSV row per training batch: epoch, batch, and each loss of that batch.

    Keras reports the running mean of the epoch at every batch; the loss of the
    batch itself (what the paper logs) is recovered exactly from consecutive
    means: ``l_b = (b + 1) * m_b - b * m_(b-1)``.
    """

    def __init__(self, path):
        super().__init__()
        self.path = str(path)
        self._fh = None
        self._writer = None
        self._epoch = 0
        self._keys = None
        self._previous = {}

    def on_train_begin(self, logs=None):
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.writer(self._fh)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._previous = {}

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(k for k in logs if k == "loss" or k.endswith("_loss"))
            if self._fh.tell() == 0:
                self._writer.writerow(["epoch", "batch", *self._keys])
        row = []
        for key in self._keys:
            mean = float(logs[key])
            row.append(f"{(batch + 1) * mean - batch * self._previous.get(key, 0.0):.6g}")
            self._previous[key] = mean
        self._writer.writerow([self._epoch, batch, *row])

    def on_epoch_end(self, epoch, logs=None):
        self._fh.flush()

    def on_train_end(self, logs=None):
        if self._fh:
            self._fh.close()
            self._fh = None


class TimeBudget(keras.callbacks.Callback):
    """Stop at an epoch boundary when the next epoch would overrun ``minutes`` of training.

    The estimate is the longest epoch so far, so a recipe with a budget
    finishes within it on a slower machine instead of being cut mid-epoch.
    """

    def __init__(self, minutes):
        super().__init__()
        if minutes is None or minutes <= 0:
            raise ValueError(f"TimeBudget: minutes must be positive; got {minutes!r}.")
        self.seconds = 60.0 * minutes
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()
        self._longest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self._longest = max(self._longest, now - self._epoch_start)
        if now - self._start + self._longest > self.seconds:
            self.stopped_epoch = epoch
            self.model.stop_training = True


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch: its time, the logged metrics and how long the remaining epochs will take.

    The first epoch also traces and compiles the training and validation
    steps (tens of seconds on a CPU), so once a second epoch has run the
    estimate uses only the epochs after the first. ``metrics=False`` prints
    only the time left (beside Keras' own progress bar, which shows the metrics).
    """

    def __init__(self, metrics=True, print_fn=None):
        super().__init__()
        self.metrics = metrics
        # flushed: the line is for someone watching a log file or a CI job, not for the end of the run
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.durations = []

    def on_train_begin(self, logs=None):
        self.durations = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def remaining_seconds(self, epochs_left):
        """Estimated seconds for ``epochs_left`` more epochs (None before the first epoch has ended)."""
        if not self.durations:
            return None
        steady = self.durations[1:] or self.durations
        return epochs_left * sum(steady) / len(steady)

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.monotonic() - self._epoch_start)
        total = self.params.get("epochs") or epoch + 1
        left = self.remaining_seconds(total - epoch - 1)
        parts = [f"epoch {epoch + 1}/{total}", _duration(self.durations[-1])]
        if self.metrics:
            parts += [f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float))]
        if epoch + 1 < total:
            parts.append(f"about {_duration(left)} left")
        self.print_fn(", ".join(parts))
