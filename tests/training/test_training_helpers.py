"""Shared training helpers: precision, head weights, roles, compile + fit, callbacks, evaluate, checkpoints."""

import csv
import glob
import os
import shutil

import keras
import numpy as np
import pytest

from mitoseg_tf.data.pipeline import from_arrays, make_pipeline
from mitoseg_tf.data.sources import load_source
from mitoseg_tf.metrics.pixel import segmentation_metrics
from mitoseg_tf.training import compile_model, evaluate, fit, monitor_key, output_roles, precision
from mitoseg_tf.training.callbacks import BatchLossLogger, BestCheckpoint
from mitoseg_tf.training.targets import head_weights
from mitoseg_tf.zoo import build
from mitoseg_tf.zoo.checkpoint import load_checkpoint


def tiny_unet(**overrides):
    return build("unet", **{"base_filters": 4, "input_shape": (None, None, 3), "dropout": 0.0, **overrides})


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_resolve_precision_passes_explicit_names_through(name, monkeypatch):
    monkeypatch.setattr(precision, "gpu_available", lambda: True)  # must not matter for explicit names
    assert precision.resolve_precision(name) == name


@pytest.mark.parametrize("bad", ["float64", "bf16", "", None, "AUTO"])
def test_resolve_precision_rejects_unknown_names_listing_valid_ones(bad):
    with pytest.raises(ValueError) as info:
        precision.resolve_precision(bad)
    for name in ("auto", "float32", "mixed_bfloat16", "mixed_float16"):
        assert name in str(info.value)


@pytest.mark.parametrize(
    "gpu, bf16, expected",
    [
        (True, True, "mixed_float16"),
        (True, False, "mixed_float16"),
        (False, True, "mixed_bfloat16"),
        (False, False, "float32"),
    ],
)
def test_auto_precision_picks_by_hardware(gpu, bf16, expected, monkeypatch):
    monkeypatch.delenv("MITOSEG_PRECISION", raising=False)
    monkeypatch.setattr(precision, "gpu_available", lambda: gpu)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: bf16)
    assert precision.resolve_precision("auto") == expected


@pytest.mark.parametrize(
    "resolved, gpu, bf16, warned",
    [
        ("mixed_bfloat16", False, False, True),
        ("mixed_bfloat16", False, True, False),
        ("mixed_bfloat16", True, False, False),
        ("float32", False, False, False),
        ("mixed_float16", True, False, False),
    ],
)
def test_emulated_bfloat16_is_warned_about(resolved, gpu, bf16, warned, monkeypatch):
    monkeypatch.setattr(precision, "gpu_available", lambda: gpu)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: bf16)
    message = precision.slow_precision_warning(resolved)
    assert (message is not None) == warned
    if warned:
        assert "float32" in message and "auto" in message


def test_auto_precision_on_this_machine_is_concrete(monkeypatch):
    monkeypatch.delenv("MITOSEG_PRECISION", raising=False)
    assert precision.resolve_precision("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
    assert precision.resolve_precision() == precision.resolve_precision("auto")


def test_auto_precision_honours_the_environment_override(monkeypatch):
    monkeypatch.setattr(precision, "gpu_available", lambda: True)
    monkeypatch.setenv("MITOSEG_PRECISION", "float32")
    assert precision.resolve_precision("auto") == "float32"
    monkeypatch.setenv("MITOSEG_PRECISION", "nonsense")  # ignored, not trusted
    assert precision.resolve_precision("auto") == "mixed_float16"


def test_set_precision_sets_the_global_policy():
    assert precision.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert precision.set_precision("float32") == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


# ---------------------------------------------------------------- head weights and roles


def test_head_weights_equal():
    weights = head_weights(["mask_b", "mask", "mask_a"], "equal")
    assert list(weights) == ["mask", "mask_b", "mask_a"]  # primary first, then the given order
    assert weights == pytest.approx({"mask": 1 / 3, "mask_a": 1 / 3, "mask_b": 1 / 3})


def test_head_weights_halving_matches_hand_values():
    # Extra heads are halved in the order given (the model's output order), primary map first.
    weights = head_weights(["mask_near", "mask", "mask_far"], "halving")
    assert weights == pytest.approx({"mask": 4 / 7, "mask_near": 2 / 7, "mask_far": 1 / 7})
    reverse = head_weights(["mask", "mask_far", "mask_near"], "halving")
    assert reverse == pytest.approx({"mask": 4 / 7, "mask_far": 2 / 7, "mask_near": 1 / 7})
    assert head_weights(["mask"], "halving") == {"mask": 1.0}


def test_head_weights_halving_respects_the_floor():
    names = ["mask"] + [f"mask_{i}" for i in range(1, 6)]
    # raw 1, .5, .25, .125, .0625, max(.03125, .0625) -> sum 2
    expected = dict(zip(names, np.array([1, 0.5, 0.25, 0.125, 0.0625, 0.0625]) / 2.0))
    assert head_weights(names, "halving") == pytest.approx(expected)
    # a higher floor: 1, .5, .3, .3 -> sum 2.1
    custom = head_weights(names[:4], "halving", floor=0.3)
    assert custom == pytest.approx(dict(zip(names[:4], np.array([1, 0.5, 0.3, 0.3]) / 2.1)))


def test_head_weights_rejects_unknown_schemes():
    with pytest.raises(ValueError, match="equal.*halving"):
        head_weights(["mask"], "linear")


def test_output_roles_of_a_zoo_model():
    assert output_roles(tiny_unet()) == {"mask": "segmentation"}


def _functional(output_names, with_cls=False):
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(x)
    outputs = [
        keras.layers.Activation("softmax", name=name)(keras.layers.Conv2D(2, 1, name=f"{name}_logits")(x))
        for name in output_names
    ]
    if with_cls:
        pooled = keras.layers.GlobalAveragePooling2D()(x)
        outputs.append(keras.layers.Activation("sigmoid", name="cls")(keras.layers.Dense(1, name="cls_logits")(pooled)))
    return keras.Model(inputs, outputs, name="hand_made")


def test_output_roles_of_a_multi_output_model():
    model = _functional(["mask", "mask_aux"], with_cls=True)
    assert output_roles(model) == {"mask": "segmentation", "mask_aux": "segmentation", "cls": "classification"}


def test_output_roles_rejects_outputs_outside_the_convention():
    with pytest.raises(ValueError, match="'foo'"):
        output_roles(_functional(["foo"]))
    with pytest.raises(ValueError, match="no output named 'mask'"):
        output_roles(_functional(["mask_aux"]))


def test_monitor_key_prefixes_multi_output_models():
    assert monitor_key(tiny_unet()) == "val_mitosis_dice"
    assert monitor_key(tiny_unet(), "miou", split=None) == "miou"
    assert monitor_key(_functional(["mask", "mask_aux"])) == "val_mask_mitosis_dice"


# ---------------------------------------------------------------- compile + fit


def test_compile_model_rejects_optimizer_with_adam_options():
    with pytest.raises(ValueError, match="optimizer"):
        compile_model(tiny_unet(), optimizer=keras.optimizers.Adam(), learning_rate=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        compile_model(tiny_unet(), optimizer=keras.optimizers.Adam(), ema=False)


def test_fit_refuses_uncompiled_models_and_bad_epochs():
    data = [(np.zeros((1, 32, 32, 3), "float32"), np.zeros((1, 32, 32, 1), "int32"))]
    with pytest.raises(ValueError, match="compile"):
        fit(tiny_unet(), data, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        fit(compile_model(tiny_unet()), data, epochs=0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny U-Net trained 2 epochs x 3 steps on the synthetic source at 64 px, with a run folder."""
    run_dir = str(tmp_path_factory.mktemp("run"))
    keras.utils.set_random_seed(0)
    train = load_source("synthetic", "train", num_examples=8, size=64)
    val = load_source("synthetic", "validation", num_examples=4, size=64)
    model = compile_model(tiny_unet())
    history = fit(
        model,
        make_pipeline(train, training=True, batch_size=2, crop_size=32, seed=0),
        make_pipeline(val, training=False, batch_size=2),
        epochs=2,
        steps_per_epoch=3,
        run_dir=run_dir,
        verbose=0,
    )
    return run_dir, history


def test_fit_writes_a_loadable_best_checkpoint(trained_run):
    run_dir, _ = trained_run
    best = load_checkpoint(os.path.join(run_dir, "best.keras"))
    assert best.name == "unet"
    out = np.asarray(best(np.zeros((1, 32, 32, 3), "float32"), training=False))
    assert out.shape == (1, 32, 32, 2) and np.isfinite(out).all()
    assert not glob.glob(os.path.join(run_dir, "*.tmp.keras"))
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # BackupAndRestore cleans up when done


def test_fit_logs_every_batch_consistently_with_the_epoch_history(trained_run):
    run_dir, history = trained_run
    with open(os.path.join(run_dir, "batch_loss.csv")) as fh:
        assert fh.readline().strip() == "epoch,batch,loss"
    batches = read_csv(os.path.join(run_dir, "batch_loss.csv"))
    assert [(int(r["epoch"]), int(r["batch"])) for r in batches] == [(e, b) for e in range(2) for b in range(3)]
    epochs = read_csv(os.path.join(run_dir, "history.csv"))
    assert [int(r["epoch"]) for r in epochs] == [0, 1]
    assert "val_mitosis_dice" in epochs[0]
    for epoch, row in enumerate(epochs):
        losses = [float(r["loss"]) for r in batches if int(r["epoch"]) == epoch]
        assert all(np.isfinite(losses)) and all(loss > 0 for loss in losses)
        # The epoch loss is the mean of the batch losses only if each batch row is that batch's own loss.
        assert np.mean(losses) == pytest.approx(float(row["loss"]), rel=1e-4)
        assert float(row["loss"]) == pytest.approx(history.history["loss"][epoch], rel=1e-6)


def test_multi_output_model_trains_on_the_pipeline_targets(tmp_path):
    keras.utils.set_random_seed(1)
    model = compile_model(_functional(["mask", "mask_aux"], with_cls=True), head_weighting="halving")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:3, 10:16, 10:16] = 1
    roles = output_roles(model)
    history = fit(
        model,
        make_pipeline(from_arrays(images, masks), training=True, batch_size=2, crop_size=16, roles=roles),
        make_pipeline(from_arrays(images, masks), training=False, batch_size=3, roles=roles),
        epochs=1,
        steps_per_epoch=2,
        run_dir=str(tmp_path),
        verbose=0,
    )
    assert np.isfinite(history.history["loss"]).all()
    assert "val_mask_mitosis_dice" in history.history
    assert os.path.isfile(tmp_path / "best.keras")  # BestCheckpoint found its (prefixed) monitor key


# ---------------------------------------------------------------- callbacks by hand


def _dense_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))


def _saved_bias(path):
    return keras.models.load_model(path).get_layer("dense").get_weights()[1]


def _set_bias(model, value):
    kernel, _ = model.get_layer("dense").get_weights()
    model.get_layer("dense").set_weights([kernel, np.full(2, value, "float32")])


def test_best_checkpoint_saves_only_on_improvement(tmp_path):
    import json
    import zipfile

    path = tmp_path / "best.keras"
    model = _dense_model()
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="mse")
    model.optimizer.build(model.trainable_variables)  # Adam's moments and the EMA copies exist
    callback = BestCheckpoint(path, "val_score", mode="max")
    callback.set_model(model)

    _set_bias(model, 1.0)
    callback.on_epoch_end(0, {"val_score": 0.5, "loss": 1.0})
    assert path.is_file() and callback.best == 0.5 and callback.best_epoch == 0
    np.testing.assert_array_equal(_saved_bias(path), [1.0, 1.0])
    with zipfile.ZipFile(path) as archive:  # the network and its weights; resume/ holds the optimizer
        assert not json.loads(archive.read("config.json")).get("compile_config")
        assert b"optimizer" not in archive.read("model.weights.h5")

    _set_bias(model, 2.0)
    callback.on_epoch_end(1, {"val_score": 0.4})  # worse: file untouched
    callback.on_epoch_end(2, {"val_score": 0.5})  # equal is not an improvement
    callback.on_epoch_end(3, {"val_score": float("nan")})
    np.testing.assert_array_equal(_saved_bias(path), [1.0, 1.0])
    assert callback.best_epoch == 0

    callback.on_epoch_end(4, {"val_score": 0.7})
    np.testing.assert_array_equal(_saved_bias(path), [2.0, 2.0])
    assert (callback.best, callback.best_epoch) == (0.7, 4)
    assert not glob.glob(str(tmp_path / "*.tmp.keras"))


def test_best_checkpoint_mode_min(tmp_path):
    path = tmp_path / "best.keras"
    model = _dense_model()
    callback = BestCheckpoint(str(path), "val_loss", mode="min")
    callback.set_model(model)
    _set_bias(model, 3.0)
    callback.on_epoch_end(0, {"val_loss": 0.9})
    _set_bias(model, 4.0)
    callback.on_epoch_end(1, {"val_loss": 1.2})
    np.testing.assert_array_equal(_saved_bias(path), [3.0, 3.0])
    callback.on_epoch_end(2, {"val_loss": 0.3})
    np.testing.assert_array_equal(_saved_bias(path), [4.0, 4.0])
    assert callback.best_epoch == 2


def test_best_checkpoint_without_a_score_keeps_the_last_epoch(tmp_path):
    # fit without validation data: nothing ranks the epochs, so best.keras is the final epoch's weights
    path = tmp_path / "best.keras"
    model = _dense_model()
    callback = BestCheckpoint(path, None)
    callback.set_model(model)
    for epoch, bias in enumerate((5.0, 1.0, 3.0)):
        _set_bias(model, bias)
        callback.on_epoch_end(epoch, {"loss": 10.0 - epoch})
        np.testing.assert_array_equal(_saved_bias(path), [bias, bias])
    assert callback.best_epoch == 2


def test_best_checkpoint_errors(tmp_path):
    callback = BestCheckpoint(tmp_path / "b.keras", "val_mitosis_dice")
    callback.set_model(_dense_model())
    with pytest.raises(KeyError, match="val_mitosis_dice") as info:
        callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert "loss, val_loss" in str(info.value)
    assert not (tmp_path / "b.keras").exists()
    with pytest.raises(ValueError, match=r"\.keras"):
        BestCheckpoint(tmp_path / "b.h5", "val_loss")
    with pytest.raises(ValueError, match="mode"):
        BestCheckpoint(tmp_path / "b.keras", "val_loss", mode="up")


def test_batch_loss_logger_recovers_each_batch_from_running_means(tmp_path):
    path = tmp_path / "batch.csv"
    per_epoch_losses = [[1.0, 3.0, 2.0], [4.0, 0.0]]
    logger = BatchLossLogger(path)
    logger.on_train_begin()
    for epoch, losses in enumerate(per_epoch_losses):
        logger.on_epoch_begin(epoch)
        for batch in range(len(losses)):
            running = float(np.mean(losses[: batch + 1]))
            logger.on_train_batch_end(batch, {"loss": running, "mask_loss": 2 * running, "mean_dice": 0.5})
        logger.on_epoch_end(epoch)
    logger.on_train_end()
    rows = read_csv(path)
    assert list(rows[0]) == ["epoch", "batch", "loss", "mask_loss"]  # metrics are not losses
    got = [(int(r["epoch"]), int(r["batch"]), float(r["loss"]), float(r["mask_loss"])) for r in rows]
    assert got == [(0, 0, 1.0, 2.0), (0, 1, 3.0, 6.0), (0, 2, 2.0, 4.0), (1, 0, 4.0, 8.0), (1, 1, 0.0, 0.0)]

    # A second run appends rows without repeating the header.
    again = BatchLossLogger(path)
    again.on_train_begin()
    again.on_epoch_begin(0)
    again.on_train_batch_end(0, {"loss": 5.0, "mask_loss": 1.0})
    again.on_train_end()
    with open(path) as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "epoch,batch,loss,mask_loss" and lines.count(lines[0]) == 1
    assert lines[-1] == "0,0,5,1"


# ---------------------------------------------------------------- evaluate


def _balance(model, data):
    """Shift the final bias so that about half the pixels are predicted as mitosis (a non-trivial test)."""
    layer = model.get_layer("mask_logits")
    logits = keras.Model(model.input, layer.output)
    scores = np.concatenate([np.asarray(logits(x, training=False)) for x, _ in data])
    margin = scores[..., -1] - scores[..., 0] if scores.shape[-1] == 2 else scores[..., 0]
    kernel, bias = layer.get_weights()
    bias = bias.copy()
    bias[-1] -= np.median(margin)
    layer.set_weights([kernel, bias])


def _hand_made_batches(seed=0):
    rng = np.random.default_rng(seed)
    batches = []
    for size in (3, 2):
        images = rng.integers(0, 256, (size, 32, 32, 3)).astype("float32")
        masks = np.zeros((size, 32, 32, 1), "int32")
        masks[0, 4:12, 6:14] = 1
        masks[-1, 20:30, 18:22] = 1
        batches.append((images, masks))
    return batches


@pytest.mark.parametrize("activation, classes", [("softmax", 2), ("sigmoid", 1), (None, 2)])
def test_evaluate_matches_the_numpy_metrics_on_the_models_labels(activation, classes):
    keras.utils.set_random_seed(0)
    model = tiny_unet(num_classes=classes, output_activation=activation)
    data = _hand_made_batches()
    _balance(model, data)

    # Reference: the model's raw outputs on the same batches, turned into labels by hand
    # (argmax of probabilities or logits, sigmoid probability > 0.5) and scored by the NumPy metrics.
    outputs = np.concatenate([np.asarray(model.predict_on_batch(x)) for x, _ in data])
    labels = outputs.argmax(-1) if classes == 2 else outputs[..., 0] > 0.5
    labels = labels.astype(np.int64)
    truth = np.concatenate([y[..., 0] for _, y in data])
    assert 0.2 < labels.mean() < 0.8

    results = evaluate(model, data)
    assert results["num_images"] == 5
    for aggregation in ("pooled", "per_image"):
        expected = segmentation_metrics(truth, labels, num_classes=2, aggregation=aggregation)
        assert results["model"][aggregation] == pytest.approx(expected, abs=1e-9)

    background = results["all_background"]
    assert background["pooled"]["mitosis_dice"] == 0.0
    assert background["pooled"]["pixel_accuracy"] == pytest.approx(1.0 - truth.mean())
    # Only the image without a mitosis (the middle one of the first batch) scores Dice 1 (zero_division).
    assert background["per_image"]["mitosis_dice"] == pytest.approx(1 / 5)


def test_evaluate_respects_max_batches_and_rejects_empty_data():
    model = tiny_unet()
    assert evaluate(model, _hand_made_batches(), max_batches=1)["num_images"] == 3
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, [])


# ---------------------------------------------------------------- load_checkpoint


def test_load_checkpoint_rejects_missing_and_non_keras_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path)  # a folder
    text = tmp_path / "x.keras"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="not a Keras .keras archive"):
        load_checkpoint(text)


def test_load_checkpoint_rejects_truncated_archives(trained_run, tmp_path):
    source = os.path.join(trained_run[0], "best.keras")
    truncated = tmp_path / "truncated.keras"
    with open(source, "rb") as fh:
        data = fh.read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.keras"):
        load_checkpoint(truncated)
    # and the intact copy loads under another name
    copy = tmp_path / "copy.keras"
    shutil.copy(source, copy)
    assert load_checkpoint(copy).name == "unet"


def test_plain_keras_loads_a_compiled_checkpoint_once_the_zoo_is_imported(tmp_path):
    """A notebook's ``keras.models.load_model("best.keras")`` after ``import mitoseg_tf.zoo``.

    A fresh process: in this one every test has already registered the losses and metrics. The zoo is
    imported before Keras, the harder order: it registers them when Keras is imported.
    """
    import subprocess
    import sys

    path = tmp_path / "compiled.keras"
    model = compile_model(tiny_unet(), "ce_dice")
    model.save(path)
    script = (
        "import mitoseg_tf.zoo, keras, sys\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "import numpy as np\n"
        "scores = m.evaluate(np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 1)), verbose=0, return_dict=True)\n"
        "print(type(m.loss).__name__, sorted(scores))"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loss, metrics = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert loss == "CEDice" and "'mean_dice'" in metrics and "'mitosis_dice'" in metrics, proc.stdout


def test_load_checkpoint_wraps_a_broken_archive_in_a_clear_error(tmp_path):
    import zipfile

    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("config.json", "{not json")
    with pytest.raises(ValueError, match="Could not load checkpoint"):
        load_checkpoint(broken)
