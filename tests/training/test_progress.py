"""Progress a person can follow: one plain line per epoch with the time left, bars over whole images."""

import numpy as np
import pytest
import tensorflow as tf

from mitoseg_tf.detection.evaluation import predict_maps
from mitoseg_tf.training import callbacks as callbacks_lib
from mitoseg_tf.training import compile_model, fit
from mitoseg_tf.training.callbacks import EpochProgress
from mitoseg_tf.training.evaluate import evaluate_whole_images
from mitoseg_tf.zoo import build


def _tiny():
    return build("unet", base_filters=4, input_shape=(None, None, 3), dropout=0.0)


def _epochs(progress, durations, monkeypatch, logs=None):
    """Run ``progress`` through epochs that take ``durations`` seconds on a fake clock."""
    clock = [0.0]
    monkeypatch.setattr(callbacks_lib.time, "monotonic", lambda: clock[0])
    progress.set_params({"epochs": len(durations) + 2})
    progress.on_train_begin()
    for epoch, seconds in enumerate(durations):
        progress.on_epoch_begin(epoch)
        clock[0] += seconds
        progress.on_epoch_end(epoch, logs or {})


def test_the_time_left_ignores_the_first_epoch_that_also_traced(monkeypatch):
    lines = []
    progress = EpochProgress(print_fn=lines.append)
    _epochs(progress, [60.0], monkeypatch)
    assert progress.remaining_seconds(3) == 180.0  # only one epoch so far: the best there is
    _epochs(progress, [60.0, 10.0, 12.0], monkeypatch, logs={"loss": 0.5, "val_mitosis_dice": 0.25})
    assert progress.remaining_seconds(2) == pytest.approx(22.0)
    assert lines[-1] == "epoch 3/5, 12 s, loss 0.5, val_mitosis_dice 0.25, about 22 s left"


def test_the_last_epoch_says_no_time_left_and_metrics_can_be_left_to_keras(monkeypatch):
    lines = []
    _epochs(EpochProgress(metrics=False, print_fn=lines.append), [5.0, 5.0], monkeypatch, logs={"loss": 1.0})
    assert lines == ["epoch 1/4, 5 s, about 15 s left", "epoch 2/4, 5 s, about 10 s left"]


def test_fit_prints_one_plain_line_per_epoch_when_stdout_is_not_a_terminal(capsys):
    model = _tiny()
    compile_model(model)
    model.run_eagerly = True  # the printed lines are under test, not the graph; tracing it costs most of a minute
    images = tf.random.uniform((4, 32, 32, 3), 0, 255, seed=1)
    masks = tf.cast(tf.random.uniform((4, 32, 32), 0, 2, tf.int32, seed=2), tf.int32)
    data = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2).repeat()
    fit(model, data, epochs=2, steps_per_epoch=2, backup=False)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split(",")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "loss" in lines[0] and "left" in lines[0]
    assert "\r" not in out and "\x08" not in out and "━" not in out  # no progress bar redraws


def _fields(count):
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.integers(0, 255, (40, 48, 3)).astype(np.uint8),
            "mask": np.zeros((40, 48), np.uint8),
            "points": np.zeros((0, 2), np.float32),
        }
        for _ in range(count)
    ]


@pytest.mark.parametrize("progress, shown", [(True, True), (False, False), (None, False)])
def test_whole_image_scoring_shows_a_bar_over_images_when_asked(capsys, progress, shown):
    model = _tiny()
    evaluate_whole_images(model, _fields(2), tile=32, progress=progress)
    predict_maps(model, _fields(2), tile=32, progress=progress)
    err = capsys.readouterr().err
    # pytest's captured stderr is not a terminal, so None (the default) shows nothing
    assert (err.count("whole images") >= 2) is shown


def test_an_imported_ipykernel_is_not_a_notebook(capsys, monkeypatch):
    """Another test (or a library) importing ipykernel must not turn a log file's lines into bar redraws."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    test_fit_prints_one_plain_line_per_epoch_when_stdout_is_not_a_terminal(capsys)
