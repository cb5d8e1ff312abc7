"""``export_detector``: the ``serving_figures`` signature counts as ``Detector.predict`` does.

The graph pieces are held against their NumPy originals (components against
``skimage.measure.label``, windows against ``cut_windows``); a tiny detector
(a hand-made blob network whose map is known, and a small figure classifier)
is exported once and its served figures compared with ``Detector.predict`` at
pixel sizes that do and do not need resampling; the shipped detector is
exported and compared on a crop of a real MITOS-2012 field.
"""

import json
import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import measure

from mitoseg_tf.detection.rescoring import cut_windows
from mitoseg_tf.detector import DetectionSettings, Detector
from mitoseg_tf.export.detector import (
    FIGURES_SIGNATURE,
    WINDOWS_SIGNATURE,
    cut_windows_graph,
    export_detector,
    label_components,
)
from mitoseg_tf.models.figure_classifier import build_figure_classifier

DETECTOR_MPP = 0.25
# Resampled up and down, 1.8 % off (outside MPP_TOLERANCE: resampled), 0.04 % off (inside: not).
INPUT_MPPS = [0.3, 0.17, 0.2456, 0.2499, DETECTOR_MPP]
# float32 centroids of ~200-px images are good to ~1e-5 px; scores differ by summation order only.
CENTRE_BOUND = 1e-3
SCORE_BOUND = 1e-5


def _blob_network():
    """A network whose map is the red channel blurred off-centre (so a wrong TTA inverse would move the blobs)."""
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(1, 5, padding="same", activation="sigmoid", name="mask")(inputs)
    model = keras.Model(inputs, outputs, name="blobs")
    kernel = np.zeros((5, 5, 3, 1), np.float32)
    kernel[1:4, 2:5, 0, 0] = 1.0 / 9.0 / 12.0
    model.get_layer("mask").set_weights([kernel, np.array([-128.0 / 12.0], np.float32)])
    return model


def _blob_image(rng, height, width, blobs):
    rows, cols = np.mgrid[:height, :width]
    red = np.zeros((height, width))
    for _ in range(blobs):
        r, c, sigma = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(2, 7)
        red += 255 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * sigma**2))
    red = red + rng.normal(0, 20, red.shape) + 40
    other = rng.uniform(0, 255, (height, width, 2))
    return np.clip(np.concatenate([red[..., None], other], axis=-1), 0, 255).astype(np.uint8)


def _served(out_dir):
    return tf.saved_model.load(out_dir).signatures


def _serve(signatures, image, mpp):
    out = signatures[FIGURES_SIGNATURE](images=tf.constant(image[None]), mpp=tf.constant(mpp, tf.float32))
    return {k: v.numpy() for k, v in out.items()}


def _assert_same_figures(prediction, served, centre_bound=CENTRE_BOUND, score_bound=SCORE_BOUND):
    assert int(served["count"]) == prediction.count == len(served["scores"])
    centres = np.array([f.centroid for f in prediction.figures], np.float64).reshape(-1, 2)
    np.testing.assert_allclose(served["centres"], centres, atol=centre_bound, rtol=0)
    np.testing.assert_allclose(served["scores"], [f.score for f in prediction.figures], atol=score_bound, rtol=0)
    np.testing.assert_allclose(served["areas_um2"], [f.area_um2 for f in prediction.figures], rtol=1e-6)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny detectors exported once: rescored with 8-fold maps, and scored by the map's max without either."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    image = _blob_image(rng, 150, 190, 40)
    classifier = build_figure_classifier(window=16, widths=(4,), dropout=0.0)
    settings = DetectionSettings(pixel_threshold=0.5, min_area_um2=2.0, tta=True, figure_score="classifier")
    rescored = Detector(_blob_network(), mpp=DETECTOR_MPP, settings=settings, classifier=classifier, tile=64)
    # A score threshold in the widest gap between the classifier's scores, so that some figures go and
    # float noise cannot move one across it.
    scores = np.sort([f.score for f in rescored.predict(image, DETECTOR_MPP).figures])
    middle = scores[len(scores) // 4 : 3 * len(scores) // 4 + 1]
    gap = int(np.argmax(np.diff(middle)))
    rescored = rescored.with_settings(score_threshold=float(middle[gap : gap + 2].mean()))
    plain = Detector(
        _blob_network(),
        mpp=DETECTOR_MPP,
        tile=96,
        settings=DetectionSettings(pixel_threshold=0.6, min_area_um2=3.0, score_threshold=0.75, figure_score="max"),
    )
    out = tmp_path_factory.mktemp("tiny")
    summaries = {
        name: export_detector(detector, out / name) for name, detector in (("rescored", rescored), ("plain", plain))
    }
    return {
        "image": image,
        "detectors": {"rescored": rescored, "plain": plain},
        "summaries": summaries,
        "dirs": {name: str(out / name) for name in summaries},
        "served": {name: _served(str(out / name)) for name in summaries},
    }


# --- graph pieces -----------------------------------------------------------------------------------------------------


def test_components_equal_skimage_labels():
    rng = np.random.default_rng(1)
    label = tf.function(label_components)
    masks = [
        rng.random(shape) < p
        for shape, p in [
            ((1, 1), 1.0),
            ((1, 1), 0.0),
            ((5, 7), 0.5),
            ((64, 80), 0.3),
            ((64, 80), 0.45),
            ((64, 80), 0.6),
            ((1, 50), 0.7),
            ((40, 1), 0.7),
            ((150, 120), 0.4),
        ]
    ]
    # A one-pixel-wide serpentine: a single component ~1,300 pixels long, the worst case for propagation.
    snake = np.zeros((101, 101), bool)
    snake[::4, 1:-1] = True
    for i, row in enumerate(range(0, 97, 4)):
        snake[row : row + 5, -1 if i % 2 == 0 else 0] = True
    masks.append(snake)
    for mask in masks:
        expected = measure.label(mask, connectivity=2)
        np.testing.assert_array_equal(label(tf.constant(mask)).numpy(), expected)
    assert measure.label(snake, connectivity=2).max() == 1


def test_windows_equal_cut_windows_at_borders():
    rng = np.random.default_rng(2)
    cut = tf.function(cut_windows_graph)
    for height, width in [(60, 70), (5, 3), (1, 1)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        centres = np.concatenate(
            [
                rng.uniform(-2, [height + 1, width + 1], (20, 2)),
                [
                    [0, 0],
                    [height - 1, width - 1],
                    [0, width - 1],
                    [0.5, 1.5],
                    [2.5, height - 0.5],
                ],  # halves round to even
            ]
        ).astype(np.float32)
        for size in (48, 7, 8):
            np.testing.assert_array_equal(
                cut(tf.constant(image), tf.constant(centres), size).numpy(), cut_windows(image, centres, size)
            )


# --- a tiny exported detector -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rescored", "plain"])
@pytest.mark.parametrize("mpp", INPUT_MPPS)
def test_served_figures_equal_predict(tiny, name, mpp):
    prediction = tiny["detectors"][name].predict(tiny["image"], mpp, keep_probability=False)
    assert prediction.count > 0
    _assert_same_figures(prediction, _serve(tiny["served"][name], tiny["image"], mpp))


def test_score_threshold_drops_figures(tiny):
    """The rescored fixture's threshold sits among its scores: the served count is not the candidates'."""
    detector = tiny["detectors"]["rescored"]
    everything = detector.with_settings(score_threshold=0.0).predict(tiny["image"], DETECTOR_MPP)
    kept = _serve(tiny["served"]["rescored"], tiny["image"], DETECTOR_MPP)
    assert 0 < kept["count"] < everything.count


def test_served_windows_equal_classify_centres(tiny):
    from mitoseg_tf.detection.rescoring import classify_centres

    detector, image = tiny["detectors"]["rescored"], tiny["image"]
    centres = np.array([[0, 0], [75.4, 90.6], [149, 189]], np.float32)
    windows = cut_windows(image, centres, 16)
    served = tiny["served"]["rescored"][WINDOWS_SIGNATURE](windows=tf.constant(windows))["probability"].numpy()
    np.testing.assert_allclose(served, classify_centres(detector.classifier, image, centres), atol=SCORE_BOUND)
    assert WINDOWS_SIGNATURE not in tiny["served"]["plain"]


def test_image_without_figures_counts_zero(tiny):
    blank = np.zeros((40, 30, 3), np.uint8)
    for name in ("rescored", "plain"):
        served = _serve(tiny["served"][name], blank, 0.3)
        assert served["count"] == 0 and served["centres"].shape == (0, 2)


def test_bad_inputs_fail_clearly(tiny, tmp_path):
    signature = tiny["served"]["plain"][FIGURES_SIGNATURE]
    image = tf.constant(tiny["image"][None])
    for mpp in (0.0, -0.25, float("nan"), 0.01, 1e6):
        with pytest.raises(tf.errors.InvalidArgumentError, match="mpp"):
            signature(images=image, mpp=tf.constant(mpp))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one image"):
        signature(images=tf.concat([image, image], axis=0), mpp=tf.constant(0.25))
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
        signature(images=tf.zeros([1, 0, 5, 3], tf.uint8), mpp=tf.constant(0.25))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_detector(tiny["detectors"]["plain"], tmp_path / "taken")
    with pytest.raises(ValueError, match="Detector"):
        export_detector(keras.Sequential(), tmp_path / "other")


def test_card_and_summary_list_settings_in_order(tiny):
    order = ["mpp", "tta", "pixel_threshold", "min_area_um2", "figure_score", "score_threshold"]
    for name, detector in tiny["detectors"].items():
        summary = tiny["summaries"][name]
        with open(os.path.join(tiny["dirs"][name], "assets", "model_card.json")) as fh:
            card = json.load(fh)
        assert [step["name"] for step in summary["settings"]] == order
        assert card["detector"]["settings_in_order"] == summary["settings"]
        assert card["detector"]["mpp"] == DETECTOR_MPP and card["detector"]["describe"] == detector.describe()
        values = {step["name"]: step["value"] for step in summary["settings"]}
        assert values["score_threshold"] == pytest.approx(detector.settings.score_threshold)
        assert values["figure_score"] == ("classifier" if name == "rescored" else "max")
        assert summary["signatures"][:4] == ["serving_default", "serving_float", "serving_tiled", FIGURES_SIGNATURE]
        assert card["threshold"] == detector.settings.pixel_threshold and card["tta"] == detector.settings.tta
    # The map signatures are the plain export's, at the detector's pixel threshold.
    served = tiny["served"]["plain"]["serving_tiled"](images=tf.constant(tiny["image"][None]))
    mask = (tiny["detectors"]["plain"].probability_native(tiny["image"]) > 0.6).astype(np.uint8)
    assert np.mean(served["mask"].numpy()[0] != mask) < 1e-4


# --- the shipped detector on a real field -----------------------------------------------------------------------------


def test_shipped_detector_counts_a_real_field_as_predict(shared_data, tmp_path):
    """``Detector.from_weights("unet/mitosis_v1")`` (8-fold maps, second stage) on a MITOS-2012 crop at 0.2456 um/px.

    The shipped weights at their earlier settings: every step an export serves (the default
    ``unet/mitosis`` is the same weights, single-view, and finds neither of this crop's mitoses).

    The field is resampled to the detector's 0.25 um/px in both paths. A
    448-px crop keeps the sliding window to one tile (8 network passes per
    path; the cost is the export's tracing and saving, 1.5-3.5 min on the shared
    2-core machine); it holds two annotated mitoses (A01_04 at x 566 / y 1644 and 755 / 1684).
    """
    from mitoseg_tf.data.images import read_image

    field = read_image(os.path.join(shared_data, "mitos12_dev", "images", "A01_04.jpg"))
    crop = np.ascontiguousarray(field[1450:1898, 520:968, :3])
    detector = Detector.from_weights("unet/mitosis_v1")
    assert detector.rescored and detector.settings.tta and detector.mpp == DETECTOR_MPP

    prediction = detector.predict(crop, 0.2456, keep_probability=False)
    started = time.perf_counter()
    export_detector(detector, tmp_path / "shipped")
    served = _serve(_served(str(tmp_path / "shipped")), crop, 0.2456)
    print(f"shipped detector: {prediction.count} figures, export + serve {time.perf_counter() - started:.0f} s")
    assert prediction.count > 0
    _assert_same_figures(prediction, served, centre_bound=1.0, score_bound=1e-3)


def test_the_export_card_puts_the_untuned_test_before_validation_and_names_what_chose():
    from types import SimpleNamespace

    from mitoseg_tf.export.detector import _metrics
    from mitoseg_tf.zoo.weights_card import weights_card

    card = weights_card("unet/mitosis").to_dict()
    metrics = _metrics(SimpleNamespace(card=card, classifier=object()))
    keys = list(metrics)
    assert keys.index("test") < keys.index("validation") and "ATYPIA" in metrics["chosen_by"]
    assert metrics["test"] == card["rescorer"]["detection"]["test"]
    alone = _metrics(SimpleNamespace(card=card, classifier=None))
    assert alone["test"] == card["detection"]["test"] and alone["test"] != metrics["test"]
