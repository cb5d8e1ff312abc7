"""Mask Scoring R-CNN training targets: instances from the mask, mask and MaskIoU targets, sampling."""

import keras
import numpy as np
from keras import ops
from scipy import ndimage as ndi

from mitoseg_tf.models.ms_rcnn.instances import instance_targets, pixels_in_boxes
from mitoseg_tf.models.ms_rcnn.targets import (
    mask_targets,
    maskiou_targets,
    sample_anchors,
)


def test_instances_match_scipy_connected_components():
    rng = np.random.default_rng(0)
    masks = (ndi.uniform_filter(rng.uniform(size=(3, 40, 48)), 3) > 0.6).astype("int32")
    masks[2] = 0  # an image without figures
    masks[0, 0:3, 0:3] = 1  # touches the corner
    masks[0, 10, 10:13] = 0
    masks[0, 9:12, 9] = 1
    masks[0, 11, 10] = 0
    masks[0, 12, 11] = 1  # a diagonal link: one component with 8-connectivity
    got = instance_targets(masks, max_instances=64, min_area=2)
    labels = ops.convert_to_numpy(got["labels"])
    boxes, valid = ops.convert_to_numpy(got["boxes"]), ops.convert_to_numpy(got["valid"])
    for b in range(3):
        want, count = ndi.label(masks[b], structure=np.ones((3, 3)))
        kept = [i for i in range(1, count + 1) if (want == i).sum() >= 2]
        assert int(valid[b].sum()) == len(kept)
        # Same partition: each kept scipy component is exactly one of ours, and vice versa.
        for i in kept:
            ours = np.unique(labels[b][want == i])
            assert len(ours) == 1 and ours[0] > 0
            rows, cols = np.nonzero(want == i)
            np.testing.assert_array_equal(
                boxes[b, ours[0] - 1], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            )
        dropped = [i for i in range(1, count + 1) if i not in kept]
        for i in dropped:
            assert (labels[b][want == i] == 0).all()
    assert not valid[2].any() and (labels[2] == 0).all() and (boxes[2] == 0).all()
    assert ops.convert_to_numpy(got["classes"]).tolist()[2] == [0] * 64


def test_instances_beyond_the_maximum_are_dropped_in_raster_order():
    mask = np.zeros((1, 16, 16), "int32")
    for k in range(4):
        mask[0, 2 + 3 * k, 2 + 3 * k] = 1
    got = instance_targets(mask, max_instances=3, min_area=1)
    np.testing.assert_array_equal(ops.convert_to_numpy(got["boxes"])[0], [[2, 2, 3, 3], [5, 5, 6, 6], [8, 8, 9, 9]])
    assert ops.convert_to_numpy(got["labels"])[0, 11, 11] == 0


def test_mask_target_crops_one_instance_to_the_box():
    labels = np.zeros((1, 32, 32), "int32")
    labels[0, 4:12, 4:20] = 1
    labels[0, 8:12, 20:24] = 2  # a neighbour inside the box is not part of the target
    box = np.array([[[4.0, 4.0, 24.0, 12.0]]], "float32")
    target = ops.convert_to_numpy(mask_targets(labels, np.array([[1]]), box, 10))[0, 0]
    want = np.zeros((10, 10))
    want[:, :8] = 1  # instance 1 fills x 4..20 = the left 16 / 20 of the box
    np.testing.assert_array_equal(target, want)


def test_maskiou_target_on_hand_made_examples():
    size = 28
    full = np.ones((size, size), "float32")
    half = np.zeros((size, size), "float32")
    half[:, :14] = 1
    predicted = np.stack([full, half, full, half * 0.4])[None]
    target = np.stack([full, full, full, full])[None]
    # An object entirely inside its box: IoU of the binarised maps.
    # 2: the box holds half of the object (cut by the box edge): the other half counts in the union.
    # 3: prediction below 0.5 everywhere: empty, IoU 0.
    in_box = np.array([[100.0, 100.0, 50.0, 100.0]])
    area = np.array([[100.0, 100.0, 100.0, 100.0]])
    got = ops.convert_to_numpy(maskiou_targets(predicted, target, in_box, area))[0]
    np.testing.assert_allclose(got, [1.0, 0.5, 0.5, 0.0], atol=1e-6)


def test_maskiou_ratio_from_pixels_in_boxes():
    labels = np.zeros((1, 20, 20), "int32")
    labels[0, 2:12, 2:12] = 1  # a 10 x 10 object
    labels[0, 14:16, 14:18] = 2
    boxes = np.array([[[2.0, 2.0, 12.0, 12.0], [2.0, 2.0, 7.0, 12.0], [6.6, 2.4, 12.0, 12.0], [13, 13, 20, 20]]])
    got = ops.convert_to_numpy(pixels_in_boxes(labels, np.array([[1, 1, 1, 2]]), boxes, 2))
    # Box 2 keeps the left 5 columns; box 3 pixel centres 7.5.. and rows from 2.5: 5 x 10 (col 6 centre 6.5 < 6.6).
    np.testing.assert_array_equal(got[0], [100, 50, 50, 8])


def test_anchor_sampling_limits_positives_and_fills_with_negatives():
    labels = np.full((2, 100), 0, "int32")
    labels[0, :30] = 1
    labels[0, 30:40] = -1
    labels[1, :3] = 1
    sampled, positive = sample_anchors(labels, 32, 0.5, keras.random.SeedGenerator(0))
    sampled, positive = ops.convert_to_numpy(sampled), ops.convert_to_numpy(positive)
    assert positive[0].sum() == 16 and sampled[0].sum() == 32
    assert positive[1].sum() == 3 and sampled[1].sum() == 32
    assert not sampled[0, 30:40].any()
    assert (labels[positive] == 1).all() and (labels[sampled & ~positive] == 0).all()
