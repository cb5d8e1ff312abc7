"""Anchors, box arithmetic and IoU matching for the R-CNN heads (``keras.ops``, float32).

Boxes are ``(x1, y1, x2, y2)`` in input-image pixels, continuous coordinates:
pixel (row r, col c) covers ``[c, c + 1) x [r, r + 1)``. Every function here
works on batched, fixed-size padded tensors; padding is carried by a boolean
``valid`` mask, never by a ragged shape.
"""

import math

from keras import ops

# Largest log-scale a decoded box may grow by (the official coder's clamp).
BBOX_CLIP = math.log(1000.0 / 16.0)
_TINY = 1e-3


def level_anchors(height, width, stride, size, ratios):
    """The anchors of one pyramid level, ``(height * width * len(ratios), 4)`` float32.

    One anchor per ratio (``h / w``) of area ``size**2`` centred on every
    feature cell (``(col + 0.5) * stride``), ordered (row, col, ratio) like the
    flattened ``(B, height, width, len(ratios))`` RPN outputs.
    """
    ratios = ops.convert_to_tensor([float(r) for r in ratios], "float32")
    half_w = 0.5 * float(size) / ops.sqrt(ratios)
    half_h = 0.5 * float(size) * ops.sqrt(ratios)
    base = ops.stack([-half_w, -half_h, half_w, half_h], axis=-1)
    ys = (ops.cast(ops.arange(height), "float32") + 0.5) * float(stride)
    xs = (ops.cast(ops.arange(width), "float32") + 0.5) * float(stride)
    cy, cx = ops.meshgrid(ys, xs, indexing="ij")
    centres = ops.stack([cx, cy, cx, cy], axis=-1)
    return ops.reshape(centres[:, :, None, :] + base[None, None], (-1, 4))


def box_area(boxes):
    """Area of ``(..., 4)`` boxes (0 for empty or inverted ones)."""
    return ops.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * ops.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def pairwise_iou(a, b):
    """IoU of every box of ``a (..., N, 4)`` with every box of ``b (..., M, 4)``: ``(..., N, M)``.

    Pairs whose union is empty (two empty boxes) get 0.
    """
    a = ops.cast(a, "float32")[..., :, None, :]
    b = ops.cast(b, "float32")[..., None, :, :]
    iw = ops.maximum(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = ops.maximum(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    return ops.where(union > 0, inter / ops.maximum(union, 1e-12), 0.0)


def _centre_size(boxes):
    width = ops.maximum(boxes[..., 2] - boxes[..., 0], _TINY)
    height = ops.maximum(boxes[..., 3] - boxes[..., 1], _TINY)
    return boxes[..., 0] + 0.5 * width, boxes[..., 1] + 0.5 * height, width, height


def encode(boxes, references, weights=(1.0, 1.0, 1.0, 1.0)):
    """Regression targets ``(dx, dy, dw, dh)`` that turn ``references`` into ``boxes``.

    Degenerate (padding) boxes are widened to a tiny size first so the logs stay
    finite: their targets are masked out of every loss, and a NaN would survive
    the mask.
    """
    boxes, references = ops.cast(boxes, "float32"), ops.cast(references, "float32")
    gx, gy, gw, gh = _centre_size(boxes)
    rx, ry, rw, rh = _centre_size(references)
    wx, wy, ww, wh = (float(w) for w in weights)
    return ops.stack([wx * (gx - rx) / rw, wy * (gy - ry) / rh, ww * ops.log(gw / rw), wh * ops.log(gh / rh)], axis=-1)


def decode(deltas, references, weights=(1.0, 1.0, 1.0, 1.0)):
    """Inverse of ``encode``; the size deltas are clamped at ``BBOX_CLIP`` (no overflow)."""
    deltas, references = ops.cast(deltas, "float32"), ops.cast(references, "float32")
    rx, ry, rw, rh = _centre_size(references)
    wx, wy, ww, wh = (float(w) for w in weights)
    cx = deltas[..., 0] / wx * rw + rx
    cy = deltas[..., 1] / wy * rh + ry
    w = ops.exp(ops.minimum(deltas[..., 2] / ww, BBOX_CLIP)) * rw
    h = ops.exp(ops.minimum(deltas[..., 3] / wh, BBOX_CLIP)) * rh
    return ops.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def clip_boxes(boxes, height, width):
    """Clip ``(..., 4)`` boxes to the image ``[0, width] x [0, height]``."""
    height = ops.cast(height, "float32")
    width = ops.cast(width, "float32")
    x1 = ops.clip(boxes[..., 0], 0.0, width)
    y1 = ops.clip(boxes[..., 1], 0.0, height)
    x2 = ops.clip(boxes[..., 2], 0.0, width)
    y2 = ops.clip(boxes[..., 3], 0.0, height)
    return ops.stack([x1, y1, x2, y2], axis=-1)


def match(iou, gt_valid, positive_threshold, negative_threshold, low_quality=True):
    """Assign every box to its best ground truth.

    Args:
        iou: ``(B, N, M)`` IoU of N boxes with M (padded) ground-truth boxes.
        gt_valid: ``(B, M)`` bool, False for padding.
        low_quality: also make positive, for each ground truth, the boxes with
            its highest IoU (so a figure no anchor covers well still gets one).

    Returns:
        ``labels (B, N) int32``: 1 positive (IoU >= positive_threshold),
        0 negative (< negative_threshold), -1 in between (ignored);
        ``index (B, N) int32``: the best ground truth (meaningless where not positive);
        ``best (B, N) float32``: its IoU (-1 where the image has no ground truth).
    """
    iou = ops.where(gt_valid[:, None, :], ops.cast(iou, "float32"), -1.0)
    best = ops.max(iou, axis=2)
    index = ops.cast(ops.argmax(iou, axis=2), "int32")
    labels = ops.where(best >= positive_threshold, 1, ops.where(best < negative_threshold, 0, -1))
    if low_quality:
        per_gt_best = ops.max(iou, axis=1, keepdims=True)
        is_best = ops.logical_and(iou == per_gt_best, per_gt_best > 0)
        labels = ops.where(ops.any(is_best, axis=2), 1, labels)
    return ops.cast(labels, "int32"), index, best
