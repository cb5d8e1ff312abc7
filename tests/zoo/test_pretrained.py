"""Weights shipped with the package: float16 files, manifest, ``build(name, weights=tag)``."""

import json
import os

import numpy as np
import pytest

from mitoseg_tf.zoo import build, pretrained, shipping, weights_card


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A weights folder holding tiny U-Net weights under the tag "demo"."""
    model = build("unet", base_filters=4, input_shape=(None, None, 3))
    shipping.save_float16_weights(model, str(tmp_path / "unet_demo.weights.h5"))
    manifest = {"unet/demo": {"file": "unet_demo.weights.h5", "arguments": {"base_filters": 4}, "threshold": 0.5}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(weights_card, "WEIGHTS_DIR", str(tmp_path))
    return model, tmp_path


def test_float16_file_is_half_the_size_and_loads_back(shipped, tmp_path):
    import h5py

    model, folder = shipped
    model.save_weights(str(tmp_path / "f32.weights.h5"))
    with h5py.File(folder / "unet_demo.weights.h5") as fh:
        kinds = []
        fh.visititems(
            lambda n, o: kinds.append(o.dtype) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None
        )
    assert kinds and all(k == np.float16 for k in kinds)
    assert os.path.getsize(folder / "unet_demo.weights.h5") < 0.7 * os.path.getsize(tmp_path / "f32.weights.h5")
    loaded = build("unet", weights="demo", input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    expected = model.predict_on_batch(x)
    got = loaded.predict_on_batch(x)
    assert all(v.dtype == "float32" for v in loaded.weights)
    # float16 storage rounds each weight to 11 significant bits; outputs agree closely, not bitwise
    np.testing.assert_allclose(got, expected, atol=2e-2)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a).astype(np.float16).astype(np.float32))


def test_unknown_tag_and_architecture_changes_are_refused(shipped):
    with pytest.raises(
        ValueError, match=r"No shipped weights 'nope' for model 'unet'; shipped \(model/weights\): unet/demo"
    ):
        build("unet", weights="nope")
    with pytest.raises(ValueError, match=r"base_filters would change the network"):
        build("unet", weights="demo", base_filters=8)
    with pytest.raises(FileNotFoundError, match="not found"):
        build("unet", weights="/no/such.weights.h5")


def test_ship_run_writes_float16_weights_and_a_card_with_the_runs_detection_settings(tmp_path):
    from mitoseg_tf.detection.evaluation import calibrate, save_detection_settings

    run = tmp_path / "run"
    run.mkdir()
    model = build("unet", base_filters=4, input_shape=(None, None, 3))
    model.save(str(run / "best.keras"))
    (run / "config.json").write_text(json.dumps({"model": "unet", "base_filters": 4, "recipe": "zoo/recipes/x.yaml"}))
    (run / "metrics.json").write_text(
        json.dumps({"train_seconds": 12.5, "validation": {"model": {"pooled": {"dice": 0.5}}}})
    )
    # two 40x40 validation maps at 0.5 um/px, one true figure each: found in the first, a false one in the second
    first, second = np.zeros((40, 40), np.float32), np.zeros((40, 40), np.float32)
    first[10:18, 10:18], second[25:33, 25:33] = 0.9, 0.8
    truth = np.array([[13.5, 13.5]], np.float32)
    settings = {**calibrate([(first, truth, 0.5), (second, truth, 0.5)], min_areas_um2=(0.0,)), "mpp": 0.5, "tta": True}
    save_detection_settings(str(run), settings)

    weights_dir = tmp_path / "weights"
    with pytest.raises(ValueError, match="No licence recorded for dataset.*'toy'.*DATA_LICENCES"):
        shipping.ship_run(str(run), "demo", data="toy", licence="CC0", data_licences=["toy"], weights_dir=weights_dir)
    assert not weights_dir.exists()
    path = shipping.ship_run(
        str(run),
        "demo",
        data="toy",
        licence="MIT",
        data_licences=["synthetic"],
        weights_dir=str(weights_dir),
        detection=True,
    )
    assert os.path.basename(path) == "unet_demo.weights.h5" and os.path.isfile(path)
    entry = pretrained.weights_entry("unet", "demo", weights_dir=str(weights_dir))
    assert (
        entry["arguments"] == {"base_filters": 4} and entry["recipe"] == "zoo/recipes/x.yaml" and entry["data"] == "toy"
    )
    shipped_card = weights_card.weights_card("unet/demo", str(weights_dir))
    assert shipped_card.data_licences == (weights_card.DATA_LICENCES["synthetic"],)
    assert entry["validation"] == {"pooled": {"dice": 0.5}} and entry["train_seconds"] == 12.5
    card = entry["detection"]
    # pooled: threshold 0.8 keeps both (tp 1, fp 1, fn 1 -> 1/2), 0.9 keeps the true one only (2/3): 0.9 is chosen
    assert card["score_threshold"] == pytest.approx(0.9) and card["tta"] is True and card["mpp"] == 0.5
    assert card["validation"]["5um"]["f1"] == pytest.approx(2 / 3)
    # held out: alone, either map scores the same at every threshold, so each chooses the lowest (0) for the
    # other; then the first finds its figure and the second keeps its false one and misses its own: tp 1, fp 1, fn 1
    held_out = card["validation_held_out"]
    assert (held_out["tp"], held_out["fp"], held_out["fn"]) == (1, 1, 1) and held_out["f1"] == pytest.approx(0.5)
    loaded = build("unet", weights=path, base_filters=4, input_shape=(16, 16, 3))
    x = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=2e-2)


def test_a_shipped_rescorer_loads_beside_its_weights_and_its_absence_is_explained(shipped):
    from mitoseg_tf.models.figure_classifier import build_figure_classifier

    _, weights_dir = shipped
    with pytest.raises(
        ValueError, match="unet/demo ship without a second-stage figure classifier; shipped with one: none"
    ):
        pretrained.load_rescorer("unet", "demo")
    assert pretrained.rescorer_entry("unet", "demo") is None
    classifier = build_figure_classifier(window=16, widths=(4, 8))
    with pytest.raises(ValueError, match="No shipped weights 'other'"):
        shipping.ship_rescorer(classifier, "unet", "other", detection={}, training="toy")
    detection = {"pixel_threshold": 0.2, "min_area_um2": 30.0, "score_threshold": 0.9}
    path = shipping.ship_rescorer(classifier, "unet", "demo", detection=detection, training="toy")
    assert os.path.basename(path) == "unet_demo_rescorer.weights.h5" and os.path.isfile(path)
    entry = pretrained.weights_entry("unet", "demo")
    assert entry["file"] == "unet_demo.weights.h5"  # the segmentation weights' card is kept
    card = entry["rescorer"]
    assert (
        card["arguments"] == {"window": 16, "widths": [4, 8], "dropout": 0.3, "members": 1}
        and card["training"] == "toy"
    )
    assert card["detection"] == {**detection, "figure_score": "classifier"}
    loaded = pretrained.load_rescorer("unet", "demo")
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), classifier.predict_on_batch(x), atol=2e-3)


def test_ship_settings_lists_the_same_files_at_new_settings_and_keeps_the_old_tag(shipped):
    from mitoseg_tf.detector import Detector
    from mitoseg_tf.models.figure_classifier import build_figure_classifier

    _, weights_dir = shipped
    old = {"pixel_threshold": 0.2, "min_area_um2": 30.0, "score_threshold": 0.9, "tta": True}
    shipping.ship_rescorer(
        build_figure_classifier(window=16, widths=(4, 8)), "unet", "demo", detection=old, training="toy"
    )
    before = sorted(os.listdir(weights_dir))
    shipping.ship_settings("unet", "demo", source_tag="demo", detection={"pixel_threshold": 0.5, "tta": True})
    shipping.ship_settings("unet", "demo_v1", source_tag="demo")
    new = {"pixel_threshold": 0.4, "min_area_um2": 5.0, "score_threshold": 0.98, "tta": False}
    alone = {"pixel_threshold": 0.3, "min_area_um2": 50.0, "score_threshold": 0.5, "tta": False, "mpp": 0.25}
    shipping.ship_settings(
        "unet", "demo", source_tag="demo_v1", detection=alone, rescorer_detection=new, chosen_by="validation slides"
    )
    assert sorted(os.listdir(weights_dir)) == before  # no weights file written, none removed
    first, second = pretrained.weights_entry("unet", "demo_v1"), pretrained.weights_entry("unet", "demo")
    assert first["file"] == second["file"] and first["rescorer"]["file"] == second["rescorer"]["file"]
    assert first["rescorer"]["detection"] == {**old, "figure_score": "classifier"}
    assert first["detection"] == {"pixel_threshold": 0.5, "tta": True}
    assert second["chosen_by"] == "validation slides" and second["detection"] == alone
    # the detector of each tag runs at its own card's settings; the classifier's settings win when it rescores
    kept, chosen = Detector.from_weights("unet/demo_v1"), Detector.from_weights("unet/demo")
    assert (kept.settings.pixel_threshold, kept.settings.tta) == (0.2, True)
    assert (chosen.settings.pixel_threshold, chosen.settings.min_area_um2, chosen.settings.tta) == (0.4, 5.0, False)
    assert Detector.from_weights("unet/demo", rescore=False).settings.min_area_um2 == 50.0
    shipping.ship_settings("unet", "demo_plain", source_tag="demo", rescorer=False)
    assert not Detector.from_weights("unet/demo_plain").rescored
    with pytest.raises(ValueError, match="unet/demo_plain ships without a figure classifier"):
        shipping.ship_settings("unet", "x", source_tag="demo_plain", rescorer_detection=new)
    with pytest.raises(ValueError, match="No shipped weights 'nope'"):
        shipping.ship_settings("unet", "x", source_tag="nope")
