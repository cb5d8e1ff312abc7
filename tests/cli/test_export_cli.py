"""``mitoseg export``: a run folder's checkpoint becomes a SavedModel whose card records the run."""

import json
import os

import numpy as np
import pytest

from mitoseg_tf.cli.main import main
from mitoseg_tf.training import compile_model
from mitoseg_tf.zoo import build, get_card


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as ``mitoseg train`` leaves it: best.keras, config.json, metrics.json."""
    run = tmp_path_factory.mktemp("runs") / "unet-test"
    run.mkdir()
    model = build("unet", **{**get_card("unet").tiny, "input_shape": (None, None, 3)})
    compile_model(model)
    model.save(run / "best.keras")
    config = {
        "model": "unet",
        "data": "synthetic",
        "seed": 3,
        "crop_size": 32,
        "epochs": 1,
        "base_filters": 4,
        "loss": "ce",
        "resolved_precision": "float32",
        "version": "0.1.0",
    }
    (run / "config.json").write_text(json.dumps(config))
    metrics = {"model": "unet", "test": {"model": {"pooled": {"mean_dice": 0.61}}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_export_writes_a_saved_model_with_the_run_card(run_dir, tmp_path, capsys):
    import tensorflow as tf

    out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(run_dir / "best.keras"), "--out", str(out), "--threshold", "0.4"]) == 0
    printed = capsys.readouterr().out
    assert "SavedModel of unet-test written" in printed
    # the settings in the order they apply, numbered
    assert (
        printed.index("1. none: the detector's training resolution is unknown")
        < printed.index("2. single-view map")
        < printed.index("3. candidate figures are the 8-connected blobs of pixel probability > 0.4")
    )
    card = json.loads((out / "assets" / "model_card.json").read_text())
    assert card["name"] == "unet"
    assert card["threshold"] == 0.4
    assert card["training_data"]["data"] == "synthetic" and card["training_data"]["seed"] == 3
    assert card["metrics"]["test"]["model"]["pooled"]["mean_dice"] == 0.61
    assert card["source"] == card["weights_card"]["checkpoint"] == "unet-test/best.keras"

    loaded = tf.saved_model.load(str(out))
    images = np.random.default_rng(0).integers(0, 256, (1, 37, 50, 3), dtype=np.uint8)
    result = loaded.signatures["serving_default"](images=tf.constant(images))
    assert result["probability"].shape == (1, 37, 50) and result["mask"].dtype == tf.uint8
    np.testing.assert_array_equal(result["mask"].numpy(), (result["probability"].numpy() > 0.4).astype(np.uint8))
    assert json.loads(tf.io.read_file(loaded.model_card.asset_path).numpy()) == card


def test_checkpoint_without_run_files_still_exports(run_dir, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    os.link(run_dir / "best.keras", lone / "model.keras")
    assert main(["export", "--checkpoint", str(lone / "model.keras"), "--out", str(tmp_path / "e")]) == 0
    card = json.loads((tmp_path / "e" / "assets" / "model_card.json").read_text())
    assert card["metrics"] is None and card["training_data"].startswith("unknown")


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["export", "--checkpoint", str(tmp_path / "nope" / "best.keras"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mitoseg export: error:") and "does not exist" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_non_empty_output_folder_needs_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["export", "--checkpoint", str(run_dir / "best.keras"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(run_dir / "best.keras"), "--out", str(out), "--overwrite"]) == 0
    assert (out / "saved_model.pb").exists()


def test_shipped_mitosis_weights_export_with_their_detection_settings(tmp_path, capsys):
    """--weights: the shipped card's settings travel, TTA follows them, and the classifier is served from the same model."""
    import tensorflow as tf

    from mitoseg_tf.inference import predict_image
    from mitoseg_tf.inference.tta import forward
    from mitoseg_tf.zoo.pretrained import load_rescorer
    from mitoseg_tf.zoo.weights_card import weights_card

    # the earlier settings of the shipped weights: 8-fold maps and the classifier, every step the export serves
    shipped = weights_card("unet/mitosis_v1")
    rescoring = shipped.rescorer.detection
    out = tmp_path / "shipped"
    assert main(["export", "--weights", "unet/mitosis_v1", "--out", str(out), "--tile", "64"]) == 0
    printed = capsys.readouterr().out
    assert (
        f"candidate figures are the 8-connected blobs of pixel probability > {rescoring['pixel_threshold']:g}"
        in printed
    )
    card = json.loads((out / "assets" / "model_card.json").read_text())
    assert card["source"] == "unet/mitosis_v1" and card["tta"] is shipped.detection["tta"] is True
    assert card["threshold"] == rescoring["pixel_threshold"]
    assert [step["name"] for step in card["detector"]["settings_in_order"]] == [
        "mpp",
        "tta",
        "pixel_threshold",
        "min_area_um2",
        "figure_score",
        "score_threshold",
    ]
    values = {step["name"]: step["value"] for step in card["detector"]["settings_in_order"]}
    assert values["min_area_um2"] == rescoring["min_area_um2"] and values["score_threshold"] == pytest.approx(
        rescoring["score_threshold"]
    )
    assert "non-commercial" in card["licence"] and card["weights_card"]["recipe"] == "zoo/recipes/mitosis_unet.yaml"
    assert "reported by the paper" in (card["paper_results"] or {"source": "reported by the paper"})["source"]
    loaded = tf.saved_model.load(str(out))
    windows = np.random.default_rng(2).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    served = loaded.signatures["serving_windows"](windows=tf.constant(windows))["probability"]
    classifier = load_rescorer("unet", "mitosis_v1")
    expected = np.mean(
        [
            classifier.predict_on_batch(np.ascontiguousarray(forward(windows.astype("float32"), k)))[:, 0]
            for k in range(8)
        ],
        axis=0,
    )
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)
    image = np.random.default_rng(1).integers(0, 256, (1, 40, 72, 3), dtype=np.uint8)
    got = loaded.signatures["serving_tiled"](images=tf.constant(image))["probability"]
    model = build("unet", weights="mitosis_v1", input_shape=(None, None, 3))
    np.testing.assert_allclose(got.numpy()[0], predict_image(model, image[0], tile=64, tta=True), atol=1e-5)


def test_export_source_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):  # argparse: exactly one of --checkpoint / --weights
        main(["export", "--checkpoint", "a.keras", "--weights", "unet/mitosis", "--out", str(tmp_path / "o")])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["export", "--weights", "unet/nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "No shipped weights 'unet/nope'" in err and "unet/mitosis" in err


def test_run_detection_settings_set_threshold_and_tta(run_dir, tmp_path):
    """A run whose thresholds were chosen on averaged maps exports averaged maps with its pixel threshold."""
    run = tmp_path / "run"
    run.mkdir()
    os.link(run_dir / "best.keras", run / "best.keras")
    settings = {"score_threshold": 0.6, "pixel_threshold": 0.35, "min_area_um2": 20.0, "tta": True}
    (run / "detection.json").write_text(json.dumps(settings))
    assert main(["export", "--checkpoint", str(run / "best.keras"), "--out", str(tmp_path / "a")]) == 0
    card = json.loads((tmp_path / "a" / "assets" / "model_card.json").read_text())
    assert (
        card["tta"] is True and card["threshold"] == 0.35 and card["weights_card"]["detection"]["min_area_um2"] == 20.0
    )
    argv = [
        "export",
        "--checkpoint",
        str(run / "best.keras"),
        "--out",
        str(tmp_path / "b"),
        "--no-tta",
        "--threshold",
        "0.5",
    ]
    assert main(argv) == 0
    card = json.loads((tmp_path / "b" / "assets" / "model_card.json").read_text())
    assert card["tta"] is False and card["threshold"] == 0.5
