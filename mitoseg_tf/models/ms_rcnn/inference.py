"""Weight-free layers of the detector graph: proposals, detections, class selection, mask pasting.

All float32 (box arithmetic and scores stay exact under mixed precision) and
on fixed-size padded tensors; a ``valid`` tensor (float32 0/1) marks padding.
"""

import keras
from keras import ops

from mitoseg_tf.models.ms_rcnn import anchors as anchors_lib
from mitoseg_tf.models.ms_rcnn.nms import nms_padded

BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_NEG = -1e30


def _float32(kwargs):
    kwargs["dtype"] = "float32"
    return kwargs


@keras.saving.register_keras_serializable(package="mitoseg")
class Proposals(keras.layers.Layer):
    """RPN outputs -> ``post_nms_topk`` proposals per image.

    Inputs ``[image, objectness_2, ..., objectness_6, deltas_2, ..., deltas_6]``
    (``(B, h, w, A)`` and ``(B, h, w, 4A)``). Per level: the ``pre_nms_topk``
    best anchors, decoded, clipped, NMS; then the best ``post_nms_topk`` of all
    levels. ``pre_nms_topk`` / ``post_nms_topk`` are ``(training, inference)``.
    Returns ``boxes (B, P, 4)`` and ``valid (B, P)``.
    """

    def __init__(
        self,
        anchor_sizes,
        anchor_ratios,
        min_level=2,
        pre_nms_topk=(2000, 1000),
        post_nms_topk=(1000, 1000),
        nms_threshold=0.7,
        **kwargs,
    ):
        super().__init__(**_float32(kwargs))
        self.anchor_sizes = tuple(float(s) for s in anchor_sizes)
        self.anchor_ratios = tuple(float(r) for r in anchor_ratios)
        self.min_level = int(min_level)
        self.pre_nms_topk = tuple(int(k) for k in pre_nms_topk)
        self.post_nms_topk = tuple(int(k) for k in post_nms_topk)
        self.nms_threshold = float(nms_threshold)

    def anchors(self, feature_shapes):
        """Anchors of every level for feature maps of these ``(h, w)``, concatenated ``(A, 4)``."""
        return ops.concatenate(
            [
                anchors_lib.level_anchors(h, w, 2 ** (self.min_level + i), self.anchor_sizes[i], self.anchor_ratios)
                for i, (h, w) in enumerate(feature_shapes)
            ],
            axis=0,
        )

    def _counts(self, training):
        phase = 0 if training else 1
        levels = len(self.anchor_sizes)
        pre = self.pre_nms_topk[phase]
        return pre, min(self.post_nms_topk[phase], pre * levels)

    def call(self, inputs, training=None):
        image, *rest = inputs
        levels = len(rest) // 2
        pre, post = self._counts(training)
        height, width = ops.shape(image)[1], ops.shape(image)[2]
        boxes, scores, valid = [], [], []
        for i in range(levels):
            logits, deltas = rest[i], rest[levels + i]
            shape = ops.shape(logits)
            anchors = anchors_lib.level_anchors(
                shape[1], shape[2], 2 ** (self.min_level + i), self.anchor_sizes[i], self.anchor_ratios
            )
            batch = shape[0]
            cells = shape[1] * shape[2] * logits.shape[3]
            logits = ops.reshape(logits, (-1, cells))
            deltas = ops.reshape(deltas, (-1, cells, 4))
            # Padding with `pre` impossible candidates makes top_k(pre) valid on any map size.
            logits = ops.concatenate([logits, ops.full((batch, pre), _NEG)], axis=1)
            deltas = ops.concatenate([deltas, ops.zeros((batch, pre, 4))], axis=1)
            anchors = ops.concatenate([anchors, ops.ones((pre, 4))], axis=0)
            top, index = ops.top_k(logits, pre)
            index = ops.cast(index, "int32")
            picked = ops.take_along_axis(deltas, ops.repeat(index[..., None], 4, axis=2), axis=1)
            decoded = anchors_lib.decode(picked, ops.take(anchors, index, axis=0))
            decoded = anchors_lib.clip_boxes(decoded, height, width)
            size_ok = ops.logical_and(decoded[..., 2] > decoded[..., 0], decoded[..., 3] > decoded[..., 1])
            boxes.append(decoded)
            scores.append(top)
            valid.append(ops.logical_and(top > 0.5 * _NEG, size_ok))
        boxes = ops.stack(boxes, axis=1)
        scores = ops.stack(scores, axis=1)
        valid = ops.stack(valid, axis=1)
        flat_boxes = ops.reshape(boxes, (-1, pre, 4))
        flat_scores = ops.reshape(scores, (-1, pre))
        index, kept = nms_padded(flat_boxes, flat_scores, ops.reshape(valid, (-1, pre)), self.nms_threshold, pre)
        kept_boxes = ops.take_along_axis(flat_boxes, ops.repeat(index[..., None], 4, axis=2), axis=1)
        kept_scores = ops.where(kept, ops.take_along_axis(flat_scores, index, axis=1), _NEG)
        kept_boxes = ops.reshape(kept_boxes, (-1, levels * pre, 4))
        kept_scores = ops.reshape(kept_scores, (-1, levels * pre))
        top, index = ops.top_k(kept_scores, post)
        proposals = ops.take_along_axis(kept_boxes, ops.repeat(ops.cast(index, "int32")[..., None], 4, axis=2), axis=1)
        is_valid = top > 0.5 * _NEG
        proposals = ops.where(is_valid[..., None], proposals, 0.0)
        return ops.stop_gradient(proposals), ops.cast(is_valid, "float32")

    def compute_output_spec(self, inputs, training=None):
        batch = inputs[0].shape[0]
        _, post = self._counts(False)
        return keras.KerasTensor((batch, post, 4), "float32"), keras.KerasTensor((batch, post), "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            anchor_sizes=self.anchor_sizes,
            anchor_ratios=self.anchor_ratios,
            min_level=self.min_level,
            pre_nms_topk=self.pre_nms_topk,
            post_nms_topk=self.post_nms_topk,
            nms_threshold=self.nms_threshold,
        )
        return config


@keras.saving.register_keras_serializable(package="mitoseg")
class Detections(keras.layers.Layer):
    """Box-head outputs -> at most ``max_detections`` per image (score threshold, per-class NMS).

    Inputs ``[image, proposals, proposal_valid, class_logits, box_deltas]``;
    returns ``boxes (B, D, 4)``, ``scores (B, D)``, ``classes (B, D)`` (float32
    class ids, 0 for padding) and ``valid (B, D)``.
    """

    def __init__(self, score_threshold=0.05, nms_threshold=0.5, max_detections=100, **kwargs):
        super().__init__(**_float32(kwargs))
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)

    def call(self, inputs):
        image, proposals, proposal_valid, class_logits, box_deltas = inputs
        height, width = ops.shape(image)[1], ops.shape(image)[2]
        num_classes = class_logits.shape[-1]
        rois = proposals.shape[1]
        probs = ops.softmax(ops.cast(class_logits, "float32"), axis=-1)[:, :, 1:]
        deltas = ops.reshape(ops.cast(box_deltas, "float32"), (-1, rois, num_classes, 4))[:, :, 1:]
        boxes = anchors_lib.decode(deltas, proposals[:, :, None, :], BOX_HEAD_WEIGHTS)
        boxes = anchors_lib.clip_boxes(boxes, height, width)
        fg = num_classes - 1
        classes = ops.broadcast_to(ops.arange(1, num_classes, dtype="float32")[None, None, :], ops.shape(probs))
        valid = ops.logical_and(proposal_valid[:, :, None] > 0.5, probs > self.score_threshold)
        valid = ops.logical_and(valid, ops.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1]))
        count = rois * fg
        boxes = ops.reshape(boxes, (-1, count, 4))
        probs = ops.reshape(probs, (-1, count))
        classes = ops.reshape(classes, (-1, count))
        valid = ops.reshape(valid, (-1, count))
        pad = max(self.max_detections - count, 0)
        if pad:
            batch = ops.shape(boxes)[0]
            boxes = ops.concatenate([boxes, ops.zeros((batch, pad, 4))], axis=1)
            probs = ops.concatenate([probs, ops.zeros((batch, pad))], axis=1)
            classes = ops.concatenate([classes, ops.zeros((batch, pad))], axis=1)
            valid = ops.concatenate([valid, ops.zeros((batch, pad), dtype="bool")], axis=1)
        # Boxes of different classes never overlap once shifted apart: one NMS does every class.
        shift = ops.cast(ops.maximum(height, width), "float32") + 1.0
        shifted = boxes + (classes * shift)[..., None]
        index, kept = nms_padded(shifted, probs, valid, self.nms_threshold, self.max_detections)
        keep = ops.cast(kept, "float32")
        boxes = ops.take_along_axis(boxes, ops.repeat(index[..., None], 4, axis=2), axis=1) * keep[..., None]
        scores = ops.take_along_axis(probs, index, axis=1) * keep
        classes = ops.take_along_axis(classes, index, axis=1) * keep
        return boxes, scores, classes, keep

    def compute_output_spec(self, inputs):
        batch, d = inputs[0].shape[0], self.max_detections
        return (
            keras.KerasTensor((batch, d, 4), "float32"),
            keras.KerasTensor((batch, d), "float32"),
            keras.KerasTensor((batch, d), "float32"),
            keras.KerasTensor((batch, d), "float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            score_threshold=self.score_threshold, nms_threshold=self.nms_threshold, max_detections=self.max_detections
        )
        return config


def select_class(values, classes):
    """``values (B, R, ..., K+1)`` at each RoI's class ``classes (B, R)`` -> ``(B, R, ...)`` float32."""
    values = ops.cast(values, "float32")
    onehot = ops.one_hot(ops.cast(classes, "int32"), values.shape[-1], dtype="float32")
    onehot = ops.reshape(onehot, (-1, onehot.shape[1], *([1] * (len(values.shape) - 3)), values.shape[-1]))
    return ops.sum(values * onehot, axis=-1)


@keras.saving.register_keras_serializable(package="mitoseg")
class SelectClass(keras.layers.Layer):
    """Layer form of ``select_class``; ``activation`` (e.g. sigmoid) applied after the selection."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(**_float32(kwargs))
        self.activation = keras.activations.get(activation)
        self._activation_name = activation

    def call(self, inputs):
        values, classes = inputs
        return self.activation(select_class(values, classes))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape[:-1], "float32")

    def get_config(self):
        return {**super().get_config(), "activation": self._activation_name}


@keras.saving.register_keras_serializable(package="mitoseg")
class MaskScores(keras.layers.Layer):
    """``[maskiou (B, D), scores, valid]`` -> final ``mask_score = class score x MaskIoU`` (0 for padding)."""

    def __init__(self, **kwargs):
        super().__init__(**_float32(kwargs))

    def call(self, inputs):
        maskiou, scores, valid = inputs
        return ops.clip(maskiou, 0.0, 1.0) * scores * valid


@keras.saving.register_keras_serializable(package="mitoseg")
class PasteMasks(keras.layers.Layer):
    """Instances -> semantic map logits ``(B, H, W, 1)``.

    Inputs ``[image, boxes (B, D, 4), masks (B, D, S, S) probabilities, mask_scores (B, D)]``.
    Each instance whose ``mask_score >= score_threshold`` has its mask resized
    bilinearly into its box (separable weights, two einsums), the maximum over
    instances is taken (an OR of the probabilities: thresholding it at 0.5 is
    the OR of the masks thresholded at 0.5) and returned as logits, so the
    model's ``mask`` output is a plain sigmoid map.
    """

    def __init__(self, score_threshold=0.3, **kwargs):
        super().__init__(**_float32(kwargs))
        self.score_threshold = float(score_threshold)

    @staticmethod
    def _weights(low, high, length, size):
        centres = ops.cast(ops.arange(length), "float32") + 0.5
        extent = ops.maximum(high - low, 1e-6)
        pos = (centres[None, None, :] - low[..., None]) / extent[..., None] * size - 0.5
        inside = ops.logical_and(centres[None, None, :] >= low[..., None], centres[None, None, :] < high[..., None])
        pos = ops.clip(pos, 0.0, size - 1.0)
        taps = ops.arange(size, dtype="float32")
        weight = ops.maximum(1.0 - ops.abs(pos[..., None] - taps), 0.0)
        return weight * ops.cast(inside, "float32")[..., None]

    def call(self, inputs):
        image, boxes, masks, scores = inputs
        height, width = ops.shape(image)[1], ops.shape(image)[2]
        size = masks.shape[-1]
        wy = self._weights(boxes[..., 1], boxes[..., 3], height, size)
        wx = self._weights(boxes[..., 0], boxes[..., 2], width, size)
        keep = ops.cast(scores >= self.score_threshold, "float32")
        masks = masks * keep[..., None, None]
        rows = ops.einsum("bdhk,bdkl->bdhl", wy, masks)
        pasted = ops.einsum("bdhl,bdwl->bdhw", rows, wx)
        prob = ops.clip(ops.max(pasted, axis=1), 1e-6, 1.0 - 1e-6)
        return (ops.log(prob) - ops.log1p(-prob))[..., None]

    def compute_output_spec(self, inputs):
        shape = inputs[0].shape
        return keras.KerasTensor((shape[0], shape[1], shape[2], 1), "float32")

    def get_config(self):
        return {**super().get_config(), "score_threshold": self.score_threshold}
