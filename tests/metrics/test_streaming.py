"""Streaming Keras metrics agree with the NumPy reference in mitoseg_tf.metrics.pixel."""

import keras
import numpy as np
import pytest
from keras import ops

from mitoseg_tf.metrics import pixel, streaming

# Keras metric class -> key of pixel.segmentation_metrics it must reproduce.
PAIRS = [
    (streaming.MeanDice, "mean_dice"),
    (streaming.PaperMPA, "paper_mpa"),
    (streaming.MeanPixelAccuracy, "mpa"),
    (streaming.MeanIoU, "miou"),
    (streaming.ClassDice, "mitosis_dice"),
    (streaming.PixelAccuracy, "pixel_accuracy"),
]


def _batches(rng, channels, num_batches=3, size=6, from_logits=True):
    """Random (labels, scores) batches of varying batch size, with empty images."""
    out = []
    for b in range(num_batches):
        n = 2 + b  # changing batch size, as the last batch of an epoch would
        truth = (rng.random((n, size, size)) < 0.2).astype(np.int64)
        truth[0] = 0  # an image without mitoses
        scores = rng.normal(size=(n, size, size, channels)).astype(np.float32)
        if channels == 1:
            scores[1] = -10.0  # an image predicted empty
        else:
            scores[1, ..., 0] = 10.0
        if channels == 1 and not from_logits:
            scores = 1.0 / (1.0 + np.exp(-scores))
        out.append((truth, scores.astype(np.float32)))
    return out


def _reference(batches, aggregation, threshold=0.5, from_logits=False, zero_division=1.0):
    truth = np.concatenate([t for t, _ in batches])
    labels = np.concatenate(
        [pixel.labels_from_output(s, threshold=threshold, from_logits=from_logits) for _, s in batches]
    )
    return pixel.segmentation_metrics(truth, labels, 2, aggregation, zero_division)


@pytest.mark.parametrize("aggregation", ["pooled", "per_image"])
@pytest.mark.parametrize("channels,from_logits", [(2, False), (1, False), (1, True)])
def test_matches_numpy(aggregation, channels, from_logits):
    rng = np.random.default_rng(channels + 10 * from_logits)
    batches = _batches(rng, channels, from_logits=from_logits)
    expected = _reference(batches, aggregation, from_logits=from_logits)
    for cls, key in PAIRS:
        metric = cls(aggregation=aggregation, from_logits=from_logits)
        for truth, scores in batches:
            metric.update_state(truth, scores)
        assert float(metric.result()) == pytest.approx(expected[key], abs=1e-6), (cls.__name__, key)


def test_pooled_and_per_image_differ_on_random_data():
    rng = np.random.default_rng(3)
    batches = _batches(rng, 2)
    pooled, per_image = streaming.MeanDice(), streaming.MeanDice(aggregation="per_image")
    for truth, scores in batches:
        pooled.update_state(truth, scores)
        per_image.update_state(truth, scores)
    assert float(pooled.result()) != pytest.approx(float(per_image.result()), abs=1e-4)


def test_threshold_and_zero_division_are_used():
    rng = np.random.default_rng(4)
    batches = _batches(rng, 1, from_logits=False)
    expected = _reference(batches, "per_image", threshold=0.8, zero_division=0.0)
    metric = streaming.ClassDice(aggregation="per_image", threshold=0.8, zero_division=0.0)
    for truth, scores in batches:
        metric.update_state(truth, scores)
    assert float(metric.result()) == pytest.approx(expected["mitosis_dice"], abs=1e-6)


def test_three_classes_and_truth_with_channel_axis():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, size=(4, 5, 5))
    scores = rng.normal(size=(4, 5, 5, 3)).astype(np.float32)
    expected = pixel.segmentation_metrics(truth, pixel.labels_from_output(scores), 3)
    metric = streaming.MeanIoU(num_classes=3)
    metric.update_state(truth[..., None], scores)
    assert float(metric.result()) == pytest.approx(expected["miou"], abs=1e-6)
    dice2 = streaming.ClassDice(class_id=2, num_classes=3)
    dice2.update_state(truth, scores)
    cm = pixel.confusion_matrix(truth, pixel.labels_from_output(scores), 3)
    assert float(dice2.result()) == pytest.approx(pixel.class_dice(cm, 2), abs=1e-6)
    assert dice2.name == "class2_dice"


def test_confusion_matrix_state_is_float32_counts():
    metric = streaming.MeanDice()
    truth = np.array([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]])
    pred = np.array([[[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0], [0, 0, 0, 1]]])
    metric.update_state(truth, np.eye(2, dtype=np.float32)[pred])
    state = metric.confusion_matrix
    assert keras.backend.standardize_dtype(state.dtype) == "float32"
    np.testing.assert_array_equal(ops.convert_to_numpy(state), [[10, 2], [1, 3]])
    assert float(metric.result()) == pytest.approx((20 / 23 + 6 / 9) / 2)


def test_reset_state():
    rng = np.random.default_rng(6)
    (t1, s1), (t2, s2) = _batches(rng, 2, num_batches=2)
    for aggregation in ("pooled", "per_image"):
        metric = streaming.MeanDice(aggregation=aggregation)
        metric.update_state(t1, s1)
        metric.reset_state()
        metric.update_state(t2, s2)
        expected = pixel.segmentation_metrics(t2, pixel.labels_from_output(s2), aggregation=aggregation)
        assert float(metric.result()) == pytest.approx(expected["mean_dice"], abs=1e-6)
        metric.reset_state()
        # Nothing seen: every class is absent from the scope -> zero_division.
        assert float(metric.result()) == 1.0


def test_bfloat16_predictions_give_float32_and_no_overflow():
    # One 512x512 image: the background count (~262k) overflows float16, so
    # this fails unless accumulation happens in float32.
    rng = np.random.default_rng(7)
    truth = (rng.random((1, 512, 512)) < 0.01).astype(np.int64)
    # Well-separated scores so bfloat16 rounding cannot change the argmax.
    pred = truth.copy()
    pred[0, :8, :8] = 1 - pred[0, :8, :8]
    scores = np.where(np.eye(2, dtype=bool)[pred], 4.0, -4.0).astype(np.float32)
    expected = pixel.segmentation_metrics(truth, pred)
    for cls, key in PAIRS:
        metric = cls()
        metric.update_state(truth, ops.cast(scores, "bfloat16"))
        result = metric.result()
        assert keras.backend.standardize_dtype(result.dtype) == "float32"
        assert float(result) == pytest.approx(expected[key], abs=1e-6), key


def test_sample_weight_excludes_images():
    rng = np.random.default_rng(8)
    truth, scores = _batches(rng, 2, num_batches=3)[2]
    only_first = pixel.segmentation_metrics(truth[:2], pixel.labels_from_output(scores[:2]), aggregation="per_image")
    metric = streaming.MeanDice(aggregation="per_image")
    weights = np.array([1.0, 1.0] + [0.0] * (len(truth) - 2), dtype=np.float32)
    metric.update_state(truth, scores, sample_weight=weights)
    assert float(metric.result()) == pytest.approx(only_first["mean_dice"], abs=1e-6)
    pooled = streaming.MeanDice()
    pooled.update_state(truth, scores, sample_weight=weights[:, None, None] * np.ones(truth.shape, np.float32))
    expected = pixel.segmentation_metrics(truth[:2], pixel.labels_from_output(scores[:2]))
    assert float(pooled.result()) == pytest.approx(expected["mean_dice"], abs=1e-6)


@pytest.mark.parametrize("cls", [c for c, _ in PAIRS])
def test_config_round_trip(cls):
    metric = cls(aggregation="per_image", zero_division=0.5, threshold=0.3, from_logits=True)
    config = metric.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is cls and restored.get_config() == config
    rng = np.random.default_rng(9)
    truth, scores = _batches(rng, 1)[0]
    metric.update_state(truth, scores)
    clone.update_state(truth, scores)
    assert float(clone.result()) == pytest.approx(float(metric.result()))


def test_class_dice_config_keeps_class_id():
    metric = streaming.ClassDice(class_id=0)
    config = metric.get_config()
    assert config["class_id"] == 0 and config["name"] == "class0_dice"
    assert streaming.ClassDice.from_config(config).class_id == 0


def test_default_names():
    names = [m.name for m in streaming.default_metrics()]
    assert names == ["mean_dice", "paper_mpa", "mpa", "miou", "mitosis_dice"]
    assert streaming.MeanIoU(aggregation="per_image").name == "miou_per_image"
    assert streaming.ClassDice(aggregation="per_image").name == "mitosis_dice_per_image"
    assert streaming.MeanDice(name="dice").name == "dice"
    # Fresh instances each call: compiled models must not share state.
    assert streaming.default_metrics()[0] is not streaming.default_metrics()[0]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="aggregation"):
        streaming.MeanDice(aggregation="mean")
    with pytest.raises(ValueError, match="num_classes"):
        streaming.MeanDice(num_classes=1)
    with pytest.raises(ValueError, match="class_id"):
        streaming.ClassDice(class_id=2)
    with pytest.raises(ValueError, match="float32"):
        streaming.MeanDice(dtype="float16")
    with pytest.raises(ValueError, match="channels"):
        streaming.MeanDice(num_classes=3).update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="num_classes must be 2"):
        streaming.MeanDice(num_classes=3).update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 1)))


def test_compiled_evaluate_with_partial_last_batch():
    # model.evaluate traces update_state into a compiled (XLA on TensorFlow)
    # function; 7 images in batches of 3 also exercise a changing batch size.
    rng = np.random.default_rng(10)
    truth = (rng.random((7, 8, 8)) < 0.3).astype(np.int64)
    scores = rng.normal(size=(7, 8, 8, 2)).astype(np.float32)
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, keras.layers.Activation("linear")(inputs))
    metrics = streaming.default_metrics() + [streaming.MeanDice(aggregation="per_image")]
    model.compile(loss="sparse_categorical_crossentropy", metrics=metrics, jit_compile=True)
    results = model.evaluate(scores, truth, batch_size=3, verbose=0, return_dict=True)
    expected = pixel.segmentation_metrics(truth, pixel.labels_from_output(scores))
    expected_per_image = pixel.segmentation_metrics(truth, pixel.labels_from_output(scores), aggregation="per_image")
    for name in ("mean_dice", "paper_mpa", "mpa", "miou", "mitosis_dice"):
        assert results[name] == pytest.approx(expected[name], abs=1e-6), name
    assert results["mean_dice_per_image"] == pytest.approx(expected_per_image["mean_dice"], abs=1e-6)
