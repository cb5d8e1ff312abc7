"""Greedy non-maximum suppression on fixed-size padded tensors (``keras.ops``).

Exactly the greedy algorithm (visit boxes by falling score, drop every later
box whose IoU with a kept one exceeds the threshold), computed without a loop
over boxes: with ``S[i, j] = IoU(i, j) > t and j ranks above i``, the kept set is
the unique fixed point of ``keep_i = valid_i and not any_j(keep_j and S[i, j])``;
iterating that update from "all kept" fixes one more rank per round and stops
as soon as nothing changes (in practice a handful of rounds).
"""

from keras import ops

from mitoseg_tf.models.ms_rcnn.anchors import pairwise_iou


def nms_padded(boxes, scores, valid, iou_threshold, max_output):
    """Batched greedy NMS.

    Args:
        boxes: ``(B, N, 4)``; scores: ``(B, N)``; valid: ``(B, N)`` bool.
        max_output: output size; must be <= N (pad the inputs with invalid boxes).

    Returns:
        ``indices (B, max_output) int32`` into N, kept boxes by falling score,
        and ``kept (B, max_output) bool`` (False for the padding after the last kept box).
    """
    scores = ops.where(valid, ops.cast(scores, "float32"), float("-inf"))
    order = ops.cast(ops.argsort(-scores, axis=1), "int32")
    n = ops.shape(order)[1]
    sorted_boxes = ops.take_along_axis(ops.cast(boxes, "float32"), ops.repeat(order[..., None], 4, axis=2), axis=1)
    sorted_valid = ops.take_along_axis(valid, order, axis=1)
    rank = ops.arange(n)
    earlier = rank[None, :] < rank[:, None]
    suppresses = ops.logical_and(pairwise_iou(sorted_boxes, sorted_boxes) > iou_threshold, earlier[None])

    def body(keep, changed):
        hit = ops.any(ops.logical_and(suppresses, keep[:, None, :]), axis=2)
        new = ops.logical_and(sorted_valid, ops.logical_not(hit))
        return new, ops.any(ops.not_equal(new, keep))

    keep, _ = ops.while_loop(lambda keep, changed: changed, body, (sorted_valid, ops.convert_to_tensor(True)))
    # First max_output kept ranks, in rank order: a larger key for an earlier kept rank.
    key = ops.where(keep, ops.cast(n - rank, "float32")[None, :], 0.0)
    top, position = ops.top_k(key, max_output)
    indices = ops.take_along_axis(order, ops.cast(position, "int32"), axis=1)
    return indices, top > 0
