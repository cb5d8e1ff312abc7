"""Mask Scoring R-CNN building blocks against plain NumPy references.

RoIAlign (Detectron2's aligned bilinear sampling, written here loop by loop),
greedy NMS, anchor matching and the box coder.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from mitoseg_tf.models.ms_rcnn import anchors as anchors_lib
from mitoseg_tf.models.ms_rcnn.nms import nms_padded
from mitoseg_tf.models.ms_rcnn.roi_align import assign_levels, roi_align


def np_bilinear(fmap, y, x):
    """Detectron2's ``bilinear_interpolate`` for one sample of an (H, W, C) map."""
    height, width = fmap.shape[:2]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(fmap.shape[-1])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * fmap[y_low, x_low]
        + hy * lx * fmap[y_low, x_high]
        + ly * hx * fmap[y_high, x_low]
        + ly * lx * fmap[y_high, x_high]
    )


def np_roi_align_one(fmap, box, scale, size, ratio):
    x1, y1, x2, y2 = [c * scale - 0.5 for c in box]
    bin_h, bin_w = (y2 - y1) / size, (x2 - x1) / size
    out = np.zeros((size, size, fmap.shape[-1]))
    for i in range(size):
        for j in range(size):
            acc = np.zeros(fmap.shape[-1])
            for iy in range(ratio):
                for ix in range(ratio):
                    y = y1 + i * bin_h + (iy + 0.5) * bin_h / ratio
                    x = x1 + j * bin_w + (ix + 0.5) * bin_w / ratio
                    acc += np_bilinear(fmap, y, x)
            out[i, j] = acc / ratio**2
    return out


def np_level(box):
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    return int(min(max(math.floor(4 + math.log2(math.sqrt(area) / 224 + 1e-8)), 2), 5))


def np_greedy_nms(boxes, scores, threshold):
    def iou(a, b):
        iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
        ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(int(i))
    return keep


def random_boxes(rng, n, size, min_side=0.2, max_side=None):
    max_side = max_side or size
    x1 = rng.uniform(-3, size, n)
    y1 = rng.uniform(-3, size, n)
    w = rng.uniform(min_side, max_side, n)
    h = rng.uniform(min_side, max_side, n)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=-1).astype("float32")


@pytest.mark.parametrize("ratio", [1, 2])
def test_roi_align_single_map_matches_numpy(ratio):
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(2, 9, 11, 3)).astype("float32")
    boxes = random_boxes(rng, 2 * 12, 11 * 4).reshape(2, 12, 4)
    # Hand-picked awkward boxes: sub-pixel, on each border, beyond the map, empty.
    boxes[0, :6] = [
        [5.1, 6.2, 5.6, 6.5],  # smaller than a map pixel (stride 4)
        [-6.0, -6.0, 8.0, 8.0],  # over the top-left corner
        [30.0, 20.0, 52.0, 40.0],  # over the right edge
        [0.0, 0.0, 44.0, 36.0],  # the whole image
        [50.0, 44.0, 60.0, 50.0],  # fully outside
        [10.0, 10.0, 10.0, 10.0],  # empty
    ]
    got = ops.convert_to_numpy(roi_align([fmap], boxes, 5, ratio, min_level=2))
    want = np.stack(
        [np.stack([np_roi_align_one(fmap[b], boxes[b, r], 0.25, 5, ratio) for r in range(12)]) for b in range(2)]
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_roi_align_assigns_pyramid_levels_like_numpy():
    rng = np.random.default_rng(1)
    size = 256
    features = [rng.normal(size=(1, size // 2**k, size // 2**k, 2)).astype("float32") for k in (2, 3, 4, 5)]
    # Sizes spanning every level: level 2 below 112 px, 3 up to 224, 4 up to 448, 5 beyond.
    sides = np.array([3, 40, 111, 113, 200, 230, 300, 460, 600], "float32")
    boxes = np.stack([np.full_like(sides, 7.3), np.full_like(sides, 5.1), 7.3 + sides, 5.1 + sides * 0.9], -1)
    boxes = boxes[None]
    levels = ops.convert_to_numpy(assign_levels(boxes))[0]
    assert levels.tolist() == [np_level(b) for b in boxes[0]]
    assert set(levels.tolist()) == {2, 3, 4, 5}
    got = ops.convert_to_numpy(roi_align(features, boxes, 4, 2))
    for r, box in enumerate(boxes[0]):
        k = np_level(box)
        want = np_roi_align_one(features[k - 2][0], box, 1 / 2**k, 4, 2)
        np.testing.assert_allclose(got[0, r], want, atol=1e-5)


def test_roi_align_keeps_bfloat16_features():
    fmap = keras.Variable(np.random.default_rng(2).normal(size=(1, 8, 8, 2)).astype("float32"))
    out = roi_align([ops.cast(fmap, "bfloat16")], np.array([[[2.0, 2.0, 20.0, 20.0]]], "float32"), 3, 2)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


def test_nms_matches_numpy_greedy_reference():
    rng = np.random.default_rng(3)
    batch, n = 3, 60
    boxes = random_boxes(rng, batch * n, 50, min_side=4, max_side=20).reshape(batch, n, 4)
    scores = rng.permutation(batch * n).reshape(batch, n).astype("float32") / (batch * n)
    valid = rng.uniform(size=(batch, n)) > 0.15
    for threshold in (0.3, 0.5, 0.7):
        indices, kept = nms_padded(boxes, scores, valid, threshold, n)
        indices, kept = ops.convert_to_numpy(indices), ops.convert_to_numpy(kept)
        for b in range(batch):
            ids = np.flatnonzero(valid[b])
            want = [int(ids[i]) for i in np_greedy_nms(boxes[b, ids], scores[b, ids], threshold)]
            assert indices[b][kept[b]].tolist() == want, (threshold, b)
            assert not kept[b][len(want) :].any()


def test_nms_truncates_to_max_output_and_handles_a_chain():
    # A chain: 0 suppresses 1, so 2 (overlapping 1 only) survives: a one-pass filter would drop it.
    boxes = np.array([[[0, 0, 10, 10], [3, 0, 13, 10], [7, 0, 17, 10], [40, 40, 50, 50]]], "float32")
    scores = np.array([[0.9, 0.8, 0.7, 0.6]], "float32")
    valid = np.ones((1, 4), bool)
    indices, kept = nms_padded(boxes, scores, valid, 0.4, 4)
    assert ops.convert_to_numpy(indices)[0][ops.convert_to_numpy(kept)[0]].tolist() == [0, 2, 3]
    indices, kept = nms_padded(boxes, scores, valid, 0.4, 2)
    assert ops.convert_to_numpy(indices)[0].tolist() == [0, 2] and ops.convert_to_numpy(kept).all()


def test_box_coder_round_trip_and_known_values():
    rng = np.random.default_rng(4)
    refs = random_boxes(rng, 40, 100, min_side=2, max_side=60)
    boxes = random_boxes(rng, 40, 100, min_side=2, max_side=60)
    for weights in ((1, 1, 1, 1), (10, 10, 5, 5)):
        deltas = anchors_lib.encode(boxes, refs, weights)
        np.testing.assert_allclose(ops.convert_to_numpy(anchors_lib.decode(deltas, refs, weights)), boxes, atol=1e-3)
    # Twice as wide, shifted right by half the reference width: dx = 0.5 * 10, dw = log 2 * 5.
    deltas = anchors_lib.encode(np.array([[5.0, 0, 25, 10]]), np.array([[0.0, 0, 10, 10]]), (10, 10, 5, 5))
    np.testing.assert_allclose(ops.convert_to_numpy(deltas), [[10.0, 0.0, 5 * math.log(2), 0.0]], atol=1e-5)
    # Huge size deltas are clamped, not overflowed.
    big = anchors_lib.decode(np.array([[0.0, 0, 1e4, 1e4]]), np.array([[0.0, 0, 16, 16]]))
    assert np.isfinite(ops.convert_to_numpy(big)).all()


def test_level_anchors_layout():
    a = ops.convert_to_numpy(anchors_lib.level_anchors(2, 3, 8, 16, (0.5, 1.0, 2.0)))
    assert a.shape == (2 * 3 * 3, 4)
    # Row 1, column 2, ratio 1: centred at (2.5 * 8, 1.5 * 8) = (20, 12), side 16.
    np.testing.assert_allclose(a[(1 * 3 + 2) * 3 + 1], [12, 4, 28, 20], atol=1e-5)
    # Ratio h/w = 2 keeps the area: w = 16 / sqrt 2, h = 16 * sqrt 2.
    w, h = a[2, 2] - a[2, 0], a[2, 3] - a[2, 1]
    np.testing.assert_allclose([w * h, h / w], [256, 2], rtol=1e-5)


def test_anchor_matching_thresholds_low_quality_and_empty_images():
    anchors = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10], [30, 30, 40, 40], [0, 0, 20, 20]], "float32")
    gt = np.array([[[0, 0, 10, 10], [30, 30, 44, 44]], [[0, 0, 0, 0], [0, 0, 0, 0]]], "float32")
    gt_valid = np.array([[True, True], [False, False]])
    iou_np = np.array([[[1.0, 0.0], [9 / 11, 0.0], [1 / 3, 0.0], [0.0, 100 / 196], [0.25, 0.0]]])
    iou = anchors_lib.pairwise_iou(np.broadcast_to(anchors, (2, 5, 4)), gt)
    np.testing.assert_allclose(ops.convert_to_numpy(iou)[0], iou_np[0], atol=1e-6)
    labels, index, best = anchors_lib.match(iou, gt_valid, 0.7, 0.3, low_quality=False)
    labels = ops.convert_to_numpy(labels)
    # 1, 9/11 >= 0.7 positive; 1/3 ignored; 0.51 ignored; 0.25 negative.
    assert labels[0].tolist() == [1, 1, -1, -1, 0]
    assert ops.convert_to_numpy(index)[0, :2].tolist() == [0, 0]
    # The second figure's best anchor (IoU 0.51) becomes positive with low-quality matches.
    labels_lq, index_lq, _ = anchors_lib.match(iou, gt_valid, 0.7, 0.3, low_quality=True)
    assert ops.convert_to_numpy(labels_lq)[0].tolist() == [1, 1, -1, 1, 0]
    assert int(ops.convert_to_numpy(index_lq)[0, 3]) == 1
    # No ground truth: everything negative, nothing NaN.
    assert ops.convert_to_numpy(labels_lq)[1].tolist() == [0] * 5
    assert (ops.convert_to_numpy(best)[1] == -1).all()
