"""The ``mitoseg`` command line: one real training run end to end, and the error paths in-process."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import time_limits

from mitoseg_tf.cli.main import main
from mitoseg_tf.training.callbacks import read_epoch_log
from mitoseg_tf.zoo import list_models

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Hidden option: tiles per split. The default splits (192/48/48 tiles at 256 px) cost ~20 s to
# generate and score on 2 shared cores; the first 6 tiles of a split are the same tiles either way.
NUM_EXAMPLES = 6


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def table_value(text, label, column=1):
    """A number from the metrics table printed by ``format_table`` (column 1 = pooled)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return float(cells[column])
    raise AssertionError(f"no row {label!r} in:\n{text}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``python -m mitoseg_tf.cli.main train`` once with tiny settings; (run folder, completed process)."""
    out = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    command = [
        sys.executable,
        "-m",
        "mitoseg_tf.cli.main",
        "train",
        "--model",
        "unet",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--base-filters",
        "4",
        "--crop-size",
        "32",
        "--precision",
        "float32",
        "--output-dir",
        str(out),
        "--run-name",
        "t",
        "--num-examples",
        str(NUM_EXAMPLES),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=str(out), timeout=time_limits.SUBPROCESS_S
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return os.path.join(str(out), "t"), proc


# ---------------------------------------------------------------- end to end


def test_train_writes_the_run_folder(trained):
    run_dir, _ = trained
    for name in (
        "best.keras",
        "batch_loss.csv",
        "history.csv",
        "metrics.json",
        "metrics.md",
        "config.json",
        "training_curves.png",
        "overlays.png",
    ):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert not [f for f in os.listdir(run_dir) if f.endswith(".tmp.keras")]

    assert len(read_csv(os.path.join(run_dir, "batch_loss.csv"))) == 2  # 1 epoch x 2 steps
    history = read_csv(os.path.join(run_dir, "history.csv"))
    # One epoch: validation has nothing to choose, so fit skips it and metrics.json scores the weights once.
    # Keras' CSVLogger still adds the val_ columns, writing NA in them; read_epoch_log leaves those out.
    assert len(history) == 1 and {history[0][key] for key in history[0] if key.startswith("val_")} <= {"NA"}
    assert float(history[0]["loss"]) > 0
    (epoch,) = read_epoch_log(os.path.join(run_dir, "history.csv"))
    assert epoch["epoch"] == 0 and "mitosis_dice" in epoch and not [key for key in epoch if key.startswith("val_")]

    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    assert config["model"] == "unet" and config["epochs"] == 1 and config["steps_per_epoch"] == 2
    assert config["crop_size"] == 32 and config["base_filters"] == 4
    assert config["resolved_precision"] == "float32"


def test_train_writes_numeric_metrics(trained):
    run_dir, _ = trained
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    assert {"model", "test", "validation"} <= set(metrics)
    assert metrics["model"] == "unet"
    for split in ("test", "validation"):
        assert metrics[split]["num_images"] == NUM_EXAMPLES
        for who in ("model", "all_background"):
            for aggregation in ("pooled", "per_image"):
                values = metrics[split][who][aggregation]
                assert set(values) == {"mean_dice", "paper_mpa", "miou", "mpa", "mitosis_dice", "pixel_accuracy"}
                for value in values.values():
                    assert isinstance(value, float) and 0.0 <= value <= 1.0
    # The synthetic set has mitoses, so predicting nothing scores a pooled mitosis Dice of 0.
    assert metrics["validation"]["all_background"]["pooled"]["mitosis_dice"] == 0.0


@pytest.mark.parametrize("name", ["training_curves.png", "overlays.png"])
def test_train_writes_valid_pngs(trained, name):
    from PIL import Image

    path = os.path.join(trained[0], name)
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
    if name == "training_curves.png":
        assert pixels.shape[:2] == (400, 1100)  # 11 x 4 inches at 100 dpi
    assert np.ptp(pixels[..., :3]) > 0  # not a blank canvas
    if name == "overlays.png":
        # num_overlays=4 rows of (image, truth, prediction) at 3 x 3 inches and 90 dpi, although
        # validation batches hold only 2 tiles
        assert pixels.shape[:2] == (4 * 270, 810)


def test_train_prints_the_metrics_table_and_the_validation_line(trained):
    run_dir, proc = trained
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    assert "| metric | pooled | per image |" in out
    assert "unet on the synthetic test split" in out
    # the validation table comes first; the test table follows its title
    assert table_value(out.split("unet on the synthetic test split")[1], "Dice, mitosis class") == pytest.approx(
        metrics["test"]["model"]["pooled"]["mitosis_dice"], abs=6e-5
    )
    match = re.search(r"Validation mitosis Dice \(pooled\): ([0-9.]+)\s+vs all-background prediction: ([0-9.]+)", out)
    assert match, out[-2000:]
    assert float(match.group(1)) == pytest.approx(metrics["validation"]["model"]["pooled"]["mitosis_dice"], abs=6e-5)
    assert float(match.group(2)) == 0.0


def test_evaluate_scores_the_trained_checkpoint(trained, capsys):
    run_dir, _ = trained
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    checkpoint = os.path.join(run_dir, "best.keras")
    code = main(
        [
            "evaluate",
            checkpoint,
            "--data",
            "synthetic",
            "--split",
            "test",
            "--num-examples",
            str(NUM_EXAMPLES),
            "--batch-size",
            "2",
        ]  # the run's batches, so the model's numerics are the same
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "unet on synthetic/test" in captured.out
    assert f"{NUM_EXAMPLES} images." in captured.out
    # Same checkpoint, same tiles: the numbers the training run wrote.
    expected = metrics["test"]["model"]["pooled"]
    assert table_value(captured.out, "Dice, mitosis class") == pytest.approx(expected["mitosis_dice"], abs=2e-4)
    assert table_value(captured.out, "Pixel accuracy") == pytest.approx(expected["pixel_accuracy"], abs=2e-4)
    assert table_value(captured.out, "MIoU (paper)", column=2) == pytest.approx(
        metrics["test"]["model"]["per_image"]["miou"], abs=2e-4
    )


def _train_from(checkpoint, out, *extra):
    return main(
        [
            "train",
            "--model",
            "unet",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "1",
            "--batch-size",
            "2",
            "--crop-size",
            "32",
            "--precision",
            "float32",
            "--output-dir",
            str(out),
            "--run-name",
            "again",
            "--num-examples",
            str(NUM_EXAMPLES),
            "--init-weights",
            checkpoint,
            *extra,
        ]
    )


def test_train_can_start_from_another_runs_checkpoint(trained, tmp_path):
    from mitoseg_tf.zoo import build
    from mitoseg_tf.zoo.checkpoint import load_checkpoint

    checkpoint = os.path.join(trained[0], "best.keras")
    # A learning rate of 0 is refused as an option; 1e-12 moves no float32 weight of order 0.01-1 by a unit in the last place.
    assert _train_from(checkpoint, tmp_path, "--base-filters", "4", "--learning-rate", "1e-12") == 0
    start, again = load_checkpoint(checkpoint), load_checkpoint(str(tmp_path / "again" / "best.keras"))
    fresh = build("unet", base_filters=4, input_shape=(None, None, 3))
    # Learning rate ~0: the trainable weights are still the ones it started from (BatchNorm's moving
    # statistics move anyway), and they are not what a random initialisation gives.
    pairs = list(zip(again.trainable_weights, start.trainable_weights, fresh.trainable_weights))
    assert len(pairs) == len(fresh.trainable_weights) > 0
    assert all(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9) for a, b, _ in pairs)
    assert not all(np.allclose(np.asarray(b), np.asarray(f)) for _, b, f in pairs)
    with open(tmp_path / "again" / "config.json") as fh:
        assert json.load(fh)["init_weights"] == checkpoint


def test_train_from_a_checkpoint_of_another_width_exits_2(trained, tmp_path, capsys):
    assert _train_from(os.path.join(trained[0], "best.keras"), tmp_path, "--base-filters", "8") == 2
    err = capsys.readouterr().err
    assert "does not fit unet" in err and "base_filters" in err and "Traceback" not in err


# ---------------------------------------------------------------- models


def test_models_lists_the_matching_names(capsys):
    assert main(["models", "unet*", "--no-params"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    names = [row.strip("|").split("|")[0].strip() for row in rows]
    assert names == list_models("unet*") and names
    assert all(row.split("|")[2].strip() == "-" for row in rows)  # no parameter counts with --no-params


def test_models_with_no_match_exits_2(capsys):
    assert main(["models", "nothing*"]) == 2
    err = capsys.readouterr().err
    assert "nothing*" in err and "mcsa_unet" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- user errors


def test_train_with_an_unknown_model_exits_2_naming_valid_models(tmp_path, capsys):
    assert main(["train", "--model", "nope", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mitoseg train: error:")
    assert "'nope'" in err and "mcsa_unet" in err and "unet_ca" in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []  # failed before creating a run folder


def test_train_with_an_unknown_precision_exits_2(tmp_path, capsys):
    assert main(["train", "--precision", "float64", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "float64" in err and "mixed_bfloat16" in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_evaluate_a_missing_checkpoint_exits_2(tmp_path, capsys):
    missing = tmp_path / "missing.keras"
    assert main(["evaluate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert "Traceback" not in err


def test_bad_arguments_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "many"])
    assert info.value.code == 2
    assert "--epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
