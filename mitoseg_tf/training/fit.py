"""``fit``: ``model.fit`` with the callbacks every zoo run wants."""

import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import keras

from mitoseg_tf.models.outputs import DETECTION, output_roles
from mitoseg_tf.training import distribute
from mitoseg_tf.training import resume as resume_lib
from mitoseg_tf.training.callbacks import BatchLossLogger, BestCheckpoint, EpochProgress

BEST_CHECKPOINT = "best.keras"
BATCH_LOG = "batch_loss.csv"
EPOCH_LOG = "history.csv"


class NonFiniteLoss(ValueError):
    """The training loss became NaN or infinite; the run stops (``StopOnNonFiniteLoss``)."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """End training with ``NonFiniteLoss`` at the first batch whose loss is NaN or infinite.

    Keras' ``TerminateOnNaN`` only sets ``stop_training``: the epoch still ends,
    validation scores the broken weights and a checkpoint callback may save them
    as the best, and ``fit`` returns as if training had finished. Raising here,
    before the epoch ends, keeps ``best.keras`` and the resume state at the last
    finite epoch and tells the caller why the run stopped.
    """

    ADVICE = "Lower the learning rate, or check the data for NaN or infinite values."

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(
                f"training stopped: the loss became {float(loss)} at epoch {getattr(self, '_epoch', 0) + 1}, batch "
                f"{batch + 1}; no checkpoint of that epoch was kept (a best.keras there is from an earlier epoch). "
                + self.ADVICE
            )

    def on_epoch_end(self, epoch, logs=None):
        # Weights the last update broke show only in validation: never checkpoint them either.
        loss = (logs or {}).get("val_loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(
                f"training stopped: the validation loss became {float(loss)} after epoch {epoch + 1}; no checkpoint "
                "of that epoch was kept. " + self.ADVICE
            )


def monitor_key(model, metric="mitosis_dice", split="val"):
    """The log key Keras uses for ``metric`` of the primary output (prefixed for multi-output models)."""
    prefix = f"{split}_" if split else ""
    # A detector scores its one semantic map under the metric's own name.
    maps = [n for n, role in output_roles(model).items() if role != DETECTION]
    return f"{prefix}{metric}" if len(maps) == 1 else f"{prefix}mask_{metric}"


def fit(
    model: keras.Model,
    train_data: Any,
    validation_data: Any = None,
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    run_dir: str | os.PathLike | None = None,
    monitor: str = "mitosis_dice",
    mode: str = "max",
    tensorboard: bool = False,
    backup: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
    strategy: Any = None,
    resume: bool = False,
) -> keras.callbacks.History:
    """Train a compiled zoo model.

    With ``run_dir``, writes ``best.keras`` (whenever the monitored validation
    metric improves, or every epoch without ``validation_data``; EMA weights
    when the optimizer keeps them), ``batch_loss.csv``
    (every batch's loss), ``history.csv`` (per epoch), optional TensorBoard logs,
    and ``resume/``, the state saved at every epoch end that ``resume=True``
    continues from after the process was killed (optimizer, EMA, data
    position, best value; see ``training.resume``; kept when training completes).

    Args:
        model: a zoo model compiled by ``compile_model``.
        train_data, validation_data: ``tf.data`` pipelines of (images, targets) batches.
        epochs: epochs in all (a resumed run continues up to this many).
        steps_per_epoch, validation_steps: batches per epoch (None: the whole pipeline).
        run_dir: the run folder written; None: nothing is written.
        monitor, mode: the validation metric that picks ``best.keras``, and whether higher is better.
        tensorboard: also write TensorBoard logs.
        backup: save the resume state at every epoch end.
        callbacks: extra Keras callbacks, after the run's own.
        verbose: ``"auto"``: Keras' progress bar plus the time left after each
            epoch on a terminal or in a notebook; elsewhere (a log file, CI) one
            plain line per epoch with its metrics and the time left. Else Keras' own.
        strategy: a ``tf.distribute`` strategy from ``distribute.make_strategy``
            under whose ``distribute.scope`` the model was built and compiled; each
            batch of ``train_data`` is then the global batch, split over the
            replicas, and only the chief writes ``run_dir``.
        resume: continue ``run_dir`` from its last completed epoch.

    Returns:
        The Keras ``History``.

    Raises:
        NonFiniteLoss: (a ValueError) the loss became NaN or infinite; training
            ends at that batch, before the epoch can be checkpointed.
        ValueError: an uncompiled model, a bad ``epochs``, ``resume`` without
            ``run_dir`` and ``backup``, or a strategy the model was not built under.
    """
    _check_fit(model, epochs, run_dir, backup, strategy, resume)
    with distribute.writable_dir(run_dir, strategy) as write_dir:
        cbs, state = _run_callbacks(model, write_dir, validation_data, monitor, mode, tensorboard, backup)
        cbs.extend(callbacks)
        if verbose == "auto":
            verbose, progress = _progress()
            cbs.append(progress)
        initial_epoch = 0
        if resume:
            initial_epoch, train_data = _resume(model, train_data, run_dir, write_dir, state, strategy, steps_per_epoch)
        if strategy is None and not model.optimizer.built:
            # Keras' TensorFlow trainer otherwise creates the optimizer's variables inside the first traced
            # train step, and tf.function then traces that step a second time: about 8 s of a tiny run's 35.
            model.optimizer.build(model.trainable_variables)
        build_context = distribute.scope(None)
        if strategy is not None:
            build_context = distribute.keras_fit_fixes(model, train_data, strategy)
            train_data = distribute.distribute_training_data(train_data, strategy)
            if validation_data is not None and distribute.worker_count(strategy) > 1:
                validation_data = distribute.shard_by_data(validation_data)
        with build_context:
            return model.fit(
                train_data,
                validation_data=validation_data,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                callbacks=cbs,
                verbose=verbose,
                # the pipeline shuffles with its own seed; Keras would only warn that it cannot
                shuffle=False,
            )


def _check_fit(model, epochs, run_dir, backup, strategy, resume):
    """The arguments ``fit`` refuses, before any callback writes a file."""
    if not getattr(model, "compiled", False):
        raise ValueError("fit: compile the model first (mitoseg_tf.training.compile_model).")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive integer; got {epochs!r}.")
    if resume and (run_dir is None or not backup):
        raise ValueError("fit: resume=True needs run_dir (the folder of the run to continue) and backup=True.")
    if strategy is not None and keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"fit: strategy= is tf.distribute, for the TensorFlow backend; on {keras.backend.backend()} use "
            "keras.distribution.DataParallel (docs/distributed.md)."
        )
    if strategy is not None and getattr(model, "_distribute_strategy", None) is not strategy:
        raise ValueError(
            "fit: build and compile the model inside distribute.scope(strategy) of the strategy passed to fit."
        )


def _run_callbacks(model, write_dir, validation_data, monitor, mode, tensorboard, backup):
    """The run's own callbacks, in the order they must run, and the resume state's (None without one)."""
    cbs, swap, best, state = [], None, None, None
    if getattr(model.optimizer, "use_ema", False):
        # Must come before the checkpoint so validation and saving see the EMA weights.
        swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
        cbs.append(swap)
    cbs.append(StopOnNonFiniteLoss())  # before the checkpoint: a NaN epoch never reaches it
    if write_dir is not None:
        os.makedirs(write_dir, exist_ok=True)
        scored = validation_data is not None
        best = BestCheckpoint(
            os.path.join(write_dir, BEST_CHECKPOINT), monitor_key(model, monitor) if scored else None, mode
        )
        cbs.append(best)
        cbs.append(BatchLossLogger(os.path.join(write_dir, BATCH_LOG)))
        cbs.append(keras.callbacks.CSVLogger(os.path.join(write_dir, EPOCH_LOG), append=True))
        if tensorboard:
            cbs.append(keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard")))
        if backup:  # last: it saves the state the callbacks above left at the epoch's end
            state = resume_lib.ResumeState(os.path.join(write_dir, resume_lib.STATE_DIR), best, swap)
            cbs.append(state)
    return cbs, state


def _progress():
    """Keras' verbosity and the epoch-progress callback for where stdout goes."""
    # Keras redraws its bar with carriage returns even into a file, where that is one endless line.
    # A notebook's stdout is ipykernel's stream; "ipykernel imported somewhere" is not a notebook.
    interactive = sys.stdout.isatty() or type(sys.stdout).__module__.startswith("ipykernel")
    return (1 if interactive else 0), EpochProgress(metrics=not interactive)


def _resume(model, train_data, run_dir, write_dir, state, strategy, steps_per_epoch):
    """Restore the last completed epoch's state; the epoch to start at and the data from its position."""
    with distribute.scope(strategy):
        # every worker restores from the chief's folder (shared storage for multi_worker)
        record = resume_lib.restore_state(os.path.join(run_dir, resume_lib.STATE_DIR), model)
    initial_epoch = record["completed_epochs"] if record else 0
    if record:
        state.apply(record)
    for log in (BATCH_LOG, EPOCH_LOG):
        resume_lib.truncate_epoch_log(os.path.join(write_dir, log), initial_epoch)
    return initial_epoch, resume_lib.skip_consumed(train_data, initial_epoch, steps_per_epoch)
