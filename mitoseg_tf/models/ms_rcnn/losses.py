"""The six Mask Scoring R-CNN losses, all in float32 whatever the compute dtype.

Each is normalised so that an image with no figure (no positive anchor or
RoI) gives finite zero box / mask / MaskIoU losses rather than 0 / 0.
"""

from keras import ops


def _f32(x):
    return ops.cast(x, "float32")


def smooth_l1(diff, beta):
    diff = ops.abs(diff)
    return ops.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def binary_cross_entropy_with_logits(logits, labels):
    logits = _f32(logits)
    return ops.maximum(logits, 0.0) - logits * _f32(labels) + ops.log1p(ops.exp(-ops.abs(logits)))


def rpn_losses(logits, deltas, targets):
    """Objectness BCE over the sampled anchors; smooth-L1 (beta 1/9) on the positive ones."""
    sampled, positive = _f32(targets["sampled"]), _f32(targets["positive"])
    count = ops.maximum(ops.sum(sampled), 1.0)
    objectness = ops.sum(binary_cross_entropy_with_logits(logits, positive) * sampled) / count
    box = ops.sum(ops.sum(smooth_l1(_f32(deltas) - targets["deltas"], 1.0 / 9.0), axis=-1) * positive) / count
    return objectness, box


def box_head_losses(class_logits, box_deltas, rois, box_targets):
    """Softmax cross-entropy over the sampled RoIs; smooth-L1 (beta 1) on the positive class-specific deltas."""
    weight = rois["weight"]
    count = ops.maximum(ops.sum(weight), 1.0)
    logits = _f32(class_logits)
    log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    classes = rois["classes"]
    picked = ops.take_along_axis(log_probs, classes[..., None], axis=-1)[..., 0]
    classification = -ops.sum(picked * weight) / count
    deltas = ops.reshape(_f32(box_deltas), (-1, box_deltas.shape[1], box_deltas.shape[2] // 4, 4))
    index = ops.repeat(classes[..., None, None], 4, axis=-1)
    own = ops.take_along_axis(deltas, index, axis=2)[:, :, 0]
    box = ops.sum(ops.sum(smooth_l1(own - box_targets, 1.0), axis=-1) * _f32(rois["positive"])) / count
    return classification, box


def mask_losses(mask_logits, mask_target, maskiou_pred, maskiou_target, positive):
    """Per-pixel BCE of the target-class mask and the MaskIoU L2 (0.5 x squared error), positives only."""
    positive = _f32(positive)
    count = ops.maximum(ops.sum(positive), 1.0)
    per_roi = ops.mean(binary_cross_entropy_with_logits(mask_logits, mask_target), axis=(2, 3))
    mask = ops.sum(per_roi * positive) / count
    maskiou = ops.sum(0.5 * ops.square(_f32(maskiou_pred) - maskiou_target) * positive) / count
    return mask, maskiou
