"""``fit``: ``model.fit`` with the callbacks every zoo run wants."""

import os

import keras

from mitoseg_tf.training.callbacks import BatchLossLogger, BestCheckpoint
from mitoseg_tf.training.targets import DETECTION, output_roles

BEST_CHECKPOINT = "best.keras"
BATCH_LOG = "batch_loss.csv"
EPOCH_LOG = "history.csv"


def monitor_key(model, metric="mitosis_dice", split="val"):
    """The log key Keras uses for ``metric`` of the primary output (prefixed for multi-output models)."""
    prefix = f"{split}_" if split else ""
    # A detector scores its one semantic map under the metric's own name.
    maps = [n for n, role in output_roles(model).items() if role != DETECTION]
    return f"{prefix}{metric}" if len(maps) == 1 else f"{prefix}mask_{metric}"


def fit(
    model,
    train_data,
    validation_data=None,
    *,
    epochs,
    steps_per_epoch=None,
    validation_steps=None,
    run_dir=None,
    monitor="mitosis_dice",
    mode="max",
    tensorboard=False,
    backup=True,
    callbacks=(),
    verbose="auto",
):
    """Train a compiled zoo model.

    With ``run_dir``, writes ``best.keras`` (whenever the monitored validation
    metric improves; EMA weights when the optimizer keeps them), ``batch_loss.csv``
    (every batch's loss), ``history.csv`` (per epoch), optional TensorBoard logs,
    and a ``backup/`` that lets an interrupted ``fit`` continue
    (``BackupAndRestore``; removed when training completes).

    Returns the Keras ``History``.
    """
    if not getattr(model, "compiled", False):
        raise ValueError("fit: compile the model first (mitoseg_tf.training.compile_model).")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive integer; got {epochs!r}.")
    cbs = []
    if getattr(model.optimizer, "use_ema", False):
        # Must come before the checkpoint so validation and saving see the EMA weights.
        cbs.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    cbs.append(keras.callbacks.TerminateOnNaN())
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        if validation_data is not None:
            cbs.append(BestCheckpoint(os.path.join(run_dir, BEST_CHECKPOINT), monitor_key(model, monitor), mode))
        cbs.append(BatchLossLogger(os.path.join(run_dir, BATCH_LOG)))
        cbs.append(keras.callbacks.CSVLogger(os.path.join(run_dir, EPOCH_LOG), append=True))
        if backup:
            cbs.append(keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")))
        if tensorboard:
            cbs.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")))
    cbs.extend(callbacks)
    return model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        callbacks=cbs,
        verbose=verbose,
        # the pipeline shuffles with its own seed; Keras would only warn that it cannot
        shuffle=False,
    )
