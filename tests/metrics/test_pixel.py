"""NumPy confusion-matrix metrics against numbers worked out by hand."""

import numpy as np
import pytest

from mitoseg_tf.metrics import pixel

# 4x4 example: 4 mitosis pixels in truth, 5 predicted; TP=3, FP=2, FN=1 for
# class 1. Class 0 then has TP=10, FP=1 (the missed mitosis pixel), FN=2.
TRUTH_4x4 = np.array(
    [
        [0, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
    ]
)
PRED_4x4 = np.array(
    [
        [0, 0, 0, 0],
        [0, 1, 1, 1],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
    ]
)


def test_confusion_matrix_4x4():
    cm = pixel.confusion_matrix(TRUTH_4x4, PRED_4x4, 2)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[10, 2], [1, 3]])


def test_per_class_ratios_4x4():
    cm = pixel.confusion_matrix(TRUTH_4x4, PRED_4x4, 2)
    np.testing.assert_allclose(pixel.per_class_precision(cm), [10 / 11, 3 / 5])
    np.testing.assert_allclose(pixel.per_class_recall(cm), [10 / 12, 3 / 4])
    np.testing.assert_allclose(pixel.per_class_iou(cm), [10 / (10 + 1 + 2), 3 / (3 + 2 + 1)])
    np.testing.assert_allclose(pixel.per_class_dice(cm), [2 * 10 / (2 * 10 + 1 + 2), 2 * 3 / (2 * 3 + 2 + 1)])


def test_summary_metrics_4x4():
    cm = pixel.confusion_matrix(TRUTH_4x4, PRED_4x4, 2)
    assert pixel.paper_mpa(cm) == pytest.approx((10 / 11 + 3 / 5) / 2)
    assert pixel.mpa(cm) == pytest.approx((10 / 12 + 3 / 4) / 2)
    assert pixel.miou(cm) == pytest.approx((10 / 13 + 3 / 6) / 2)
    assert pixel.mean_dice(cm) == pytest.approx((20 / 23 + 6 / 9) / 2)
    assert pixel.class_dice(cm) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert pixel.class_dice(cm, class_id=0) == pytest.approx(20 / 23)
    assert pixel.pixel_accuracy(cm) == pytest.approx(13 / 16)


def test_paper_mpa_is_precision_not_recall():
    # FP (2) != FN (1) for the mitosis class, so the paper's precision-based
    # "MPA" and the standard recall-based MPA must differ.
    cm = pixel.confusion_matrix(TRUTH_4x4, PRED_4x4, 2)
    paper, standard = pixel.paper_mpa(cm), pixel.mpa(cm)
    assert paper == pytest.approx(0.7545454545)
    assert standard == pytest.approx(0.7916666667)
    assert paper != pytest.approx(standard)


def test_dice_is_not_the_papers_union_formula():
    # The paper prints 2|GT n S| / |GT u S|; for the 4x4 example |GT u S| = 6,
    # which would give 1.0 instead of the true Dice 6/9.
    cm = pixel.confusion_matrix(TRUTH_4x4, PRED_4x4, 2)
    assert pixel.class_dice(cm) == pytest.approx(6 / 9)
    assert pixel.class_dice(cm) != pytest.approx(2 * 3 / 6)


def test_segmentation_metrics_keys_and_values():
    out = pixel.segmentation_metrics(TRUTH_4x4[None], PRED_4x4[None])
    assert list(out) == ["mean_dice", "paper_mpa", "miou", "mpa", "mitosis_dice", "pixel_accuracy"]
    assert all(type(v) is float for v in out.values())
    assert out["mitosis_dice"] == pytest.approx(6 / 9)
    assert out["mean_dice"] == pytest.approx((20 / 23 + 6 / 9) / 2)
    # A single image: pooled and per-image agree.
    assert pixel.segmentation_metrics(TRUTH_4x4[None], PRED_4x4[None], aggregation="per_image") == pytest.approx(out)


def test_empty_truth_and_prediction_uses_zero_division():
    empty = np.zeros((1, 2, 2), dtype=np.int64)
    cm = pixel.confusion_matrix(empty, empty, 2)
    np.testing.assert_array_equal(cm, [[4, 0], [0, 0]])
    np.testing.assert_allclose(pixel.per_class_dice(cm), [1.0, 1.0])
    assert pixel.class_dice(cm) == 1.0
    assert pixel.class_dice(cm, zero_division=0.0) == 0.0
    assert pixel.mean_dice(cm, zero_division=0.0) == pytest.approx((1.0 + 0.0) / 2)
    out = pixel.segmentation_metrics(empty, empty, zero_division=0.0)
    assert out == pytest.approx(
        {"mean_dice": 0.5, "paper_mpa": 0.5, "miou": 0.5, "mpa": 0.5, "mitosis_dice": 0.0, "pixel_accuracy": 1.0}
    )
    assert pixel.segmentation_metrics(empty, empty) == pytest.approx(dict.fromkeys(pixel.METRIC_NAMES, 1.0))


def test_zero_division_value_is_configurable():
    empty = np.zeros((2, 2), dtype=np.int64)
    cm = pixel.confusion_matrix(empty, empty, 2)
    assert pixel.class_dice(cm, zero_division=0.25) == 0.25
    assert pixel.miou(cm, zero_division=0.25) == pytest.approx((1.0 + 0.25) / 2)


def test_false_positives_on_empty_truth_score_zero_not_zero_division():
    # Class 1 absent from truth but predicted: recall's denominator TP+FN is 0,
    # yet this is a miss, so it scores 0 rather than zero_division.
    truth = np.zeros((2, 2), dtype=np.int64)
    pred = np.array([[1, 0], [0, 0]])
    cm = pixel.confusion_matrix(truth, pred, 2)
    np.testing.assert_array_equal(cm, [[3, 1], [0, 0]])
    np.testing.assert_allclose(pixel.per_class_recall(cm), [3 / 4, 0.0])
    np.testing.assert_allclose(pixel.per_class_precision(cm), [3 / 3, 0 / 1])
    assert pixel.class_dice(cm) == 0.0
    assert pixel.mpa(cm) == pytest.approx((3 / 4 + 0.0) / 2)


def test_prediction_all_foreground():
    truth = np.array([[0, 1], [0, 0]])
    pred = np.ones((2, 2), dtype=np.int64)
    cm = pixel.confusion_matrix(truth, pred, 2)
    np.testing.assert_array_equal(cm, [[0, 3], [0, 1]])
    # Background is never predicted but is present: precision 0, not zero_division.
    np.testing.assert_allclose(pixel.per_class_precision(cm), [0.0, 1 / 4])
    assert pixel.paper_mpa(cm) == pytest.approx((0.0 + 1 / 4) / 2)
    assert pixel.mpa(cm) == pytest.approx((0 / 3 + 1 / 1) / 2)
    assert pixel.miou(cm) == pytest.approx((0.0 + 1 / 4) / 2)
    assert pixel.mean_dice(cm) == pytest.approx((0.0 + 2 * 1 / (2 * 1 + 3 + 0)) / 2)
    assert pixel.pixel_accuracy(cm) == pytest.approx(1 / 4)


def test_pooled_and_per_image_differ():
    # Image 1: perfect (2 mitosis pixels found). Image 2: its one mitosis pixel missed.
    truth = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]])
    pred = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    cms = pixel.confusion_matrices(truth, pred, 2)
    np.testing.assert_array_equal(cms, [[[2, 0], [0, 2]], [[3, 0], [1, 0]]])
    np.testing.assert_array_equal(pixel.confusion_matrix(truth, pred, 2), [[5, 0], [1, 2]])

    pooled = pixel.segmentation_metrics(truth, pred, aggregation="pooled")
    per_image = pixel.segmentation_metrics(truth, pred, aggregation="per_image")
    assert pooled["mitosis_dice"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert per_image["mitosis_dice"] == pytest.approx((1.0 + 0.0) / 2)
    assert pooled["mean_dice"] == pytest.approx((10 / 11 + 4 / 5) / 2)
    assert per_image["mean_dice"] == pytest.approx(((1 + 1) / 2 + (6 / 7 + 0) / 2) / 2)
    assert pooled["paper_mpa"] == pytest.approx((5 / 6 + 2 / 2) / 2)
    assert per_image["paper_mpa"] == pytest.approx(((1 + 1) / 2 + (3 / 4 + 0) / 2) / 2)
    assert pooled["pixel_accuracy"] == pytest.approx(7 / 8)
    assert per_image["pixel_accuracy"] == pytest.approx((4 / 4 + 3 / 4) / 2)


def test_stacked_matrices_give_per_image_values():
    truth = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]])
    pred = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    cms = pixel.confusion_matrices(truth, pred, 2)
    np.testing.assert_allclose(pixel.class_dice(cms), [1.0, 0.0])
    np.testing.assert_allclose(pixel.mean_dice(cms), [1.0, 3 / 7])


def test_three_classes():
    truth = np.array([0, 1, 2, 2])
    pred = np.array([0, 2, 2, 1])
    cm = pixel.confusion_matrix(truth, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    np.testing.assert_allclose(pixel.per_class_dice(cm), [1.0, 0.0, 2 / (2 + 1 + 1)])


def test_truth_with_channel_axis_is_accepted():
    out_a = pixel.segmentation_metrics(TRUTH_4x4[None, ..., None], PRED_4x4[None])
    out_b = pixel.segmentation_metrics(TRUTH_4x4[None], PRED_4x4[None])
    assert out_a == out_b


def test_bool_and_integral_float_labels_are_accepted():
    cm = pixel.confusion_matrix(TRUTH_4x4.astype(bool), PRED_4x4.astype(np.float32), 2)
    np.testing.assert_array_equal(cm, [[10, 2], [1, 3]])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(1, 4, 4\).*\(1, 4, 3\)"):
        pixel.segmentation_metrics(np.zeros((1, 4, 4), int), np.zeros((1, 4, 3), int))


def test_out_of_range_labels_are_named():
    truth = TRUTH_4x4 * 255
    with pytest.raises(ValueError, match="255"):
        pixel.confusion_matrix(truth, PRED_4x4, 2)
    with pytest.raises(ValueError, match=r"-1"):
        pixel.confusion_matrix(TRUTH_4x4, PRED_4x4 - 1, 2)


def test_non_integer_labels_rejected():
    with pytest.raises(ValueError, match="0.5"):
        pixel.confusion_matrix(np.array([0.5, 1.0]), np.array([0, 1]), 2)


def test_bad_aggregation_and_num_classes():
    with pytest.raises(ValueError, match="aggregation"):
        pixel.segmentation_metrics(TRUTH_4x4[None], PRED_4x4[None], aggregation="mean")
    with pytest.raises(ValueError, match="num_classes"):
        pixel.confusion_matrix(TRUTH_4x4, PRED_4x4, 1)
    with pytest.raises(ValueError, match="class_id"):
        pixel.class_dice(np.eye(2), class_id=2)


def test_labels_from_output():
    scores = np.array([[[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]]])
    np.testing.assert_array_equal(pixel.labels_from_output(scores), [[[1, 0]]])
    probs = np.array([[[[0.2], [0.6]], [[0.5], [0.9]]]])
    np.testing.assert_array_equal(pixel.labels_from_output(probs), [[[0, 1], [0, 1]]])
    np.testing.assert_array_equal(pixel.labels_from_output(probs, threshold=0.1), [[[1, 1], [1, 1]]])
    logits = np.array([[[[-2.0], [0.3]]]])
    np.testing.assert_array_equal(pixel.labels_from_output(logits, from_logits=True), [[[0, 1]]])
