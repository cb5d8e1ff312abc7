"""Training targets of the RPN and the RoI heads (``keras.ops``, float32).

Sampling picks a fixed number of anchors / RoIs per image without loops:
every candidate gets a random key, the wanted positives are the top keys
among positives, and one ``top_k`` over a priority key (selected positives,
then negatives, then the rest) gives a fixed-size sample, positives first.
"""

import keras
from keras import ops

from mitoseg_tf.models.ms_rcnn import anchors as anchors_lib
from mitoseg_tf.models.ms_rcnn.instances import pixels_in_boxes
from mitoseg_tf.models.ms_rcnn.roi_align import pool, sample_grid


def _static_min(k, n):
    return min(k, n) if isinstance(n, int) else k


def _kth_largest(values, k):
    return ops.top_k(values, k)[0][:, k - 1 : k]


def sample_anchors(labels, batch_size, positive_fraction, seed):
    """RPN sample: ``(sampled (B, A) bool, positive (B, A) bool)``.

    At most ``positive_fraction * batch_size`` positives, the rest negatives
    (fewer when the image has fewer anchors of either kind).
    """
    anchors = labels.shape[1] if labels.shape[1] is not None else ops.shape(labels)[1]
    k_pos = _static_min(max(int(batch_size * positive_fraction), 1), anchors)
    k_all = _static_min(batch_size, anchors)
    rand = keras.random.uniform(ops.shape(labels), seed=seed)
    is_pos, is_neg = labels == 1, labels == 0
    pos_key = ops.where(is_pos, rand, -1.0)
    chosen_pos = ops.logical_and(is_pos, pos_key >= _kth_largest(pos_key, k_pos))
    num_pos = ops.sum(ops.cast(chosen_pos, "int32"), axis=1, keepdims=True)
    neg_key = ops.where(is_neg, rand, -1.0)
    ranked = ops.top_k(neg_key, k_all)[0]
    want_neg = ops.maximum(batch_size - num_pos, 1)
    neg_threshold = ops.take_along_axis(ranked, ops.minimum(want_neg, k_all) - 1, axis=1)
    chosen_neg = ops.logical_and(is_neg, neg_key >= neg_threshold)
    return ops.logical_or(chosen_pos, chosen_neg), chosen_pos


def rpn_targets(anchors, instances, config, seed):
    """Objectness labels, sample mask and box targets for every anchor ``(A, 4)``."""
    batch = ops.shape(instances["boxes"])[0]
    tiled = ops.broadcast_to(anchors[None], (batch, ops.shape(anchors)[0], 4))
    iou = anchors_lib.pairwise_iou(tiled, instances["boxes"])
    labels, index, _ = anchors_lib.match(
        iou, instances["valid"], config["rpn_positive_iou"], config["rpn_negative_iou"]
    )
    sampled, positive = sample_anchors(labels, config["rpn_batch_size"], 0.5, seed)
    matched = ops.take_along_axis(instances["boxes"], ops.repeat(index[..., None], 4, axis=2), axis=1)
    deltas = anchors_lib.encode(matched, tiled)
    return {"sampled": sampled, "positive": positive, "deltas": deltas}


def sample_rois(proposals, proposal_valid, instances, config, seed):
    """The RoIs the box head trains on: ``rois_per_image`` per image, positives first.

    Ground-truth boxes are appended to the proposals. Returns a dict with
    ``boxes (B, R, 4)``, ``weight (B, R)`` (1 for sampled, 0 for filler),
    ``positive (B, R)`` bool, ``classes (B, R)`` int32 (0 background),
    ``gt_index (B, R)`` int32 and the matched ``gt_boxes (B, R, 4)``.
    """
    candidates = ops.concatenate([ops.stop_gradient(proposals), instances["boxes"]], axis=1)
    valid = ops.concatenate([proposal_valid, instances["valid"]], axis=1)
    count = candidates.shape[1]
    rois = min(config["rois_per_image"], count)
    k_pos = max(int(rois * config["roi_positive_fraction"]), 1)
    iou = anchors_lib.pairwise_iou(candidates, instances["boxes"])
    labels, index, _ = anchors_lib.match(
        iou, instances["valid"], config["roi_positive_iou"], config["roi_positive_iou"], low_quality=False
    )
    is_pos = ops.logical_and(valid, labels == 1)
    is_neg = ops.logical_and(valid, labels == 0)
    rand = keras.random.uniform(ops.shape(valid), seed=seed)
    pos_key = ops.where(is_pos, rand, -1.0)
    chosen_pos = ops.logical_and(is_pos, pos_key >= _kth_largest(pos_key, k_pos))
    priority = ops.where(chosen_pos, 2.0 + rand, ops.where(is_neg, 1.0 + rand, -1.0 + 0.5 * rand))
    key, order = ops.top_k(priority, rois)
    order = ops.cast(order, "int32")
    gt_index = ops.take_along_axis(index, order, axis=1)
    positive = key >= 2.0
    gt_classes = ops.take_along_axis(instances["classes"], gt_index, axis=1)
    return {
        "boxes": ops.take_along_axis(candidates, ops.repeat(order[..., None], 4, axis=2), axis=1),
        "weight": ops.cast(key >= 1.0, "float32"),
        "positive": positive,
        "classes": ops.where(positive, gt_classes, 0),
        "gt_index": gt_index,
        "gt_boxes": ops.take_along_axis(instances["boxes"], ops.repeat(gt_index[..., None], 4, axis=2), axis=1),
        "num_positive_slots": k_pos,
    }


def mask_targets(labels, instance, boxes, output_size, sampling_ratio=2):
    """Binary ``(B, R, S, S)`` targets: instance ``instance (B, R)`` (1-based) RoIAligned in ``boxes``.

    The instance's own pixels are 1, everything else (other figures included)
    0; bilinear samples at or above 0.5 are foreground.
    """
    shape = ops.shape(labels)
    batch, height, width = shape[0], shape[1], shape[2]
    rois = ops.shape(boxes)[1]
    flat_boxes = ops.reshape(ops.cast(boxes, "float32"), (-1, 4))
    n = ops.shape(flat_boxes)[0]
    item = ops.repeat(ops.arange(batch, dtype="int32"), rois)
    h = ops.full((n,), height, dtype="int32")
    w = ops.full((n,), width, dtype="int32")
    index, wy, wx = sample_grid(flat_boxes, item * height * width, h, w, ops.ones((n,)), output_size, sampling_ratio)
    values = ops.take(ops.reshape(labels, (-1,)), ops.reshape(index, (-1,)))
    s2 = 2 * sampling_ratio
    values = ops.reshape(values, (n, output_size, s2, output_size, s2))
    own = ops.cast(values == ops.reshape(ops.cast(instance, "int32"), (-1,))[:, None, None, None, None], "float32")
    soft = pool(own[..., None], wy, wx)[..., 0]
    return ops.reshape(ops.cast(soft >= 0.5, "float32"), (-1, rois, output_size, output_size))


def maskiou_targets(predicted, target, in_box_pixels, instance_area):
    """MaskIoU targets ``(B, R)``: IoU of the binarised prediction with the whole object.

    ``predicted`` (probabilities) and ``target`` are ``(B, R, S, S)`` in the
    box. The part of the object outside the box is added back to the target's
    area through the share of the object's pixels inside the box
    (``in_box_pixels / instance_area``), as in the official code.
    """
    predicted = ops.cast(ops.stop_gradient(predicted) > 0.5, "float32")
    target = ops.cast(target, "float32")
    overlap = ops.sum(predicted * target, axis=(2, 3))
    ratio = ops.cast(in_box_pixels, "float32") / ops.maximum(ops.cast(instance_area, "float32"), 1.0)
    full_area = ops.sum(target, axis=(2, 3)) / ops.maximum(ratio, 1e-6)
    union = ops.maximum(ops.sum(predicted, axis=(2, 3)) + full_area - overlap, 1.0)
    return overlap / union


def roi_mask_targets(instances, rois, config):
    """Mask and in-box pixel counts of the first ``num_positive_slots`` sampled RoIs (positives first)."""
    k = rois["num_positive_slots"]
    boxes = rois["boxes"][:, :k]
    instance = rois["gt_index"][:, :k] + 1
    masks = mask_targets(instances["labels"], instance, boxes, config["mask_size"])
    inside = pixels_in_boxes(instances["labels"], instance, boxes, config["max_instances"])
    area = ops.take_along_axis(instances["areas"], rois["gt_index"][:, :k], axis=1)
    return masks, inside, area
