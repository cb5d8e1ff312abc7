"""Streaming (Keras 3) versions of the confusion-matrix metrics.

Only `keras` / `keras.ops` are used so the metrics run on every Keras backend
and trace under `tf.function`, `jax.jit` and XLA. The numbers match
`mitoseg_tf.metrics.pixel.segmentation_metrics` on the same data; see
docs/metrics.md for the definitions.

State is float32 throughout: under mixed precision predictions arrive as
(b)float16, and a float16 pixel count overflows at 65504, i.e. on a quarter of
one 512x512 image. Counts stay exact in float32 up to 2**24 pixels per cell;
beyond that each addition rounds to a relative 6e-8, far below any metric
precision that matters (integer variables are not an option: JAX disables
int64 by default and int32 would overflow on large datasets).
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "ClassDice",
    "ConfusionMatrixMetric",
    "MeanDice",
    "MeanIoU",
    "MeanPixelAccuracy",
    "PaperMPA",
    "PixelAccuracy",
    "default_metrics",
]

_AGGREGATIONS = ("pooled", "per_image")
# Einsum subscripts for the spatial axes; i, j (classes) and z (batch) are
# kept out so any label rank up to len(_SPATIAL) works.
_SPATIAL = "abcdefgh"


def _check_float32(dtype):
    policy = keras.dtype_policies.get(dtype or "float32")
    if policy.compute_dtype != "float32":
        raise ValueError(
            "The segmentation metrics accumulate pixel counts in float32 and "
            f"must keep a float32 dtype; got dtype={dtype!r}. Predictions in "
            "other dtypes are fine: they are cast to float32 on entry."
        )
    return "float32"


# --------------------------------------------------------------------------
# Metric formulas on (..., C, C) confusion-matrix tensors, mirroring pixel.py
# --------------------------------------------------------------------------


def _counts(cm):
    tp = ops.diagonal(cm, axis1=-2, axis2=-1)
    truth = ops.sum(cm, axis=-1)
    pred = ops.sum(cm, axis=-2)
    return tp, pred - tp, truth - tp, truth, pred


def _ratio(num, den, truth, pred, zero_division):
    # Same empty-class rule as pixel._ratio: absent from both sides ->
    # zero_division; a zero denominator with the class present on the other
    # side is a miss -> 0. The safe denominator keeps NaNs out of the graph
    # (and out of any gradient, should someone differentiate through this).
    absent = ops.logical_and(ops.equal(truth, 0.0), ops.equal(pred, 0.0))
    has_den = ops.greater(den, 0.0)
    value = ops.where(has_den, num / ops.where(has_den, den, 1.0), 0.0)
    return ops.where(absent, ops.cast(zero_division, "float32"), value)


def _per_class(kind, cm, zero_division):
    tp, fp, fn, truth, pred = _counts(cm)
    if kind == "precision":
        return _ratio(tp, tp + fp, truth, pred, zero_division)
    if kind == "recall":
        return _ratio(tp, tp + fn, truth, pred, zero_division)
    if kind == "iou":
        return _ratio(tp, tp + fp + fn, truth, pred, zero_division)
    if kind == "dice":
        return _ratio(2.0 * tp, 2.0 * tp + fp + fn, truth, pred, zero_division)
    raise ValueError(f"unknown per-class quantity {kind!r}")


def _pixel_accuracy(cm, zero_division):
    correct = ops.sum(ops.diagonal(cm, axis1=-2, axis2=-1), axis=-1)
    total = ops.sum(cm, axis=(-2, -1))
    has_px = ops.greater(total, 0.0)
    acc = correct / ops.where(has_px, total, 1.0)
    return ops.where(has_px, acc, ops.cast(zero_division, "float32"))


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------


class ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates a (C, C) confusion matrix; subclasses pick the summary.

    y_true: integer labels (B, H, W) or (B, H, W, 1) (floats holding class
    ids are accepted). y_pred: scores (B, H, W, C); with C == 1 a sigmoid
    output, thresholded at `threshold` (after a sigmoid when `from_logits`),
    with C > 1 the argmax over the last axis (so `from_logits` does not
    matter there). With C == 1, `num_classes` must be 2.

    aggregation="pooled" computes the summary from the confusion matrix of
    every pixel seen; "per_image" computes it per image and averages over
    images. `sample_weight`, if given, must broadcast to the label shape
    (B, H, W): it weights each pixel's count (0 ignores a pixel), and under
    "per_image" an image whose weights sum to 0 is left out of the mean.

    Unlike `pixel.confusion_matrix`, labels outside [0, C) cannot raise
    inside a compiled graph: their one-hot row is all zeros, so on the
    TensorFlow and JAX backends such pixels are simply not counted.
    """

    # Subclasses set this to the default metric name (before "_per_image").
    _default_name = None

    def __init__(
        self,
        num_classes=2,
        aggregation="pooled",
        zero_division=1.0,
        threshold=0.5,
        from_logits=False,
        name=None,
        dtype="float32",
    ):
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {_AGGREGATIONS}; got {aggregation!r}")
        if name is None:
            name = self._default_name or "confusion_matrix_metric"
            if aggregation == "per_image":
                name += "_per_image"
        super().__init__(name=name, dtype=_check_float32(dtype))
        self.num_classes = int(num_classes)
        self.aggregation = aggregation
        self.zero_division = float(zero_division)
        self.threshold = float(threshold)
        self.from_logits = bool(from_logits)

        c = self.num_classes
        self.confusion_matrix = self.add_variable(
            shape=(c, c), initializer="zeros", dtype="float32", name="confusion_matrix"
        )
        # Created for both aggregations so every instance has the same state
        # layout; they stay zero under "pooled".
        self.metric_sum = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="metric_sum")
        self.image_count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="image_count")

    # -- the summary a subclass reports --------------------------------------

    def _summary(self, cm):
        """Metric value(s) for a (..., C, C) float32 confusion matrix."""
        raise NotImplementedError

    # -- accumulation --------------------------------------------------------

    def _labels(self, y_true, y_pred):
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        y_true = ops.convert_to_tensor(y_true)
        channels = y_pred.shape[-1]
        if channels is None:
            raise ValueError("y_pred needs a static channel (last) dimension")
        if channels == 1:
            if self.num_classes != 2:
                raise ValueError(
                    "A single-channel (sigmoid) y_pred is binary, so "
                    f"num_classes must be 2; got num_classes={self.num_classes}"
                )
            scores = y_pred[..., 0]
            if self.from_logits:
                scores = ops.sigmoid(scores)
            pred = ops.cast(ops.greater(scores, self.threshold), "int32")
        elif channels == self.num_classes:
            pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        else:
            raise ValueError(
                f"y_pred has {channels} channels but num_classes="
                f"{self.num_classes}; expected {self.num_classes} (softmax) "
                "or 1 (sigmoid, binary)"
            )
        if len(y_true.shape) == len(y_pred.shape):
            if y_true.shape[-1] not in (1, None):
                raise ValueError(
                    "y_true must be labels (B, H, W) or (B, H, W, 1); got "
                    f"shape {tuple(y_true.shape)} for y_pred of shape "
                    f"{tuple(y_pred.shape)}"
                )
            y_true = ops.squeeze(y_true, axis=-1)
        if len(y_true.shape) != len(pred.shape):
            raise ValueError(f"y_true shape {tuple(y_true.shape)} does not match y_pred shape {tuple(y_pred.shape)}")
        return ops.cast(y_true, "int32"), pred

    def _batch_confusion(self, y_true, pred, weight):
        """Per-image (B, C, C) float32 confusion matrices."""
        c = self.num_classes
        rank = len(pred.shape)
        if rank < 2 or rank - 1 > len(_SPATIAL):
            raise ValueError(f"labels must have rank 2..{len(_SPATIAL) + 1}; got {rank}")
        t_hot = ops.one_hot(y_true, c, dtype="float32")
        p_hot = ops.one_hot(pred, c, dtype="float32")
        if weight is not None:
            t_hot = t_hot * weight[..., None]
        sp = _SPATIAL[: rank - 1]
        # A contraction over pixels of the two one-hot maps counts every
        # (truth, prediction) pair per image; unlike a bincount it has no
        # data-dependent shape and needs no reshape of dynamic dimensions.
        return ops.einsum(f"z{sp}i,z{sp}j->zij", t_hot, p_hot)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, pred = self._labels(y_true, y_pred)
        weight = None
        if sample_weight is not None:
            weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
            # Accept per-image (B,) and (B, H, W, 1) weights as well as
            # per-pixel (B, H, W) ones.
            if len(weight.shape) == len(pred.shape) + 1 and weight.shape[-1] == 1:
                weight = ops.squeeze(weight, axis=-1)
            while 0 < len(weight.shape) < len(pred.shape):
                weight = ops.expand_dims(weight, axis=-1)
            weight = ops.broadcast_to(weight, ops.shape(pred))
        cms = self._batch_confusion(y_true, pred, weight)
        self.confusion_matrix.assign_add(ops.sum(cms, axis=0))
        if self.aggregation == "per_image":
            values = ops.cast(self._summary(cms), "float32")
            if weight is None:
                self.metric_sum.assign_add(ops.sum(values))
                self.image_count.assign_add(ops.cast(ops.shape(values)[0], "float32"))
            else:
                keep = ops.cast(ops.greater(ops.sum(cms, axis=(1, 2)), 0.0), "float32")
                self.metric_sum.assign_add(ops.sum(values * keep))
                self.image_count.assign_add(ops.sum(keep))

    def result(self):
        if self.aggregation == "pooled":
            return ops.cast(self._summary(ops.convert_to_tensor(self.confusion_matrix)), "float32")
        count = ops.convert_to_tensor(self.image_count)
        has_images = ops.greater(count, 0.0)
        mean = ops.convert_to_tensor(self.metric_sum) / ops.where(has_images, count, 1.0)
        # No image seen is the same "nothing in scope" case as an empty class.
        return ops.where(has_images, mean, ops.cast(self.zero_division, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "aggregation": self.aggregation,
                "zero_division": self.zero_division,
                "threshold": self.threshold,
                "from_logits": self.from_logits,
            }
        )
        return config


def _mean_over_classes(kind):
    def summary(self, cm):
        return ops.mean(_per_class(kind, cm, self.zero_division), axis=-1)

    return summary


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class MeanDice(ConfusionMatrixMetric):
    """Mean over classes of Dice 2TP / (2TP + FP + FN)."""

    _default_name = "mean_dice"
    _summary = _mean_over_classes("dice")


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class PaperMPA(ConfusionMatrixMetric):
    """The MCSA-Unet paper's "MPA": mean over classes of precision TP / (TP + FP)."""

    _default_name = "paper_mpa"
    _summary = _mean_over_classes("precision")


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class MeanPixelAccuracy(ConfusionMatrixMetric):
    """Standard (FCN) mean pixel accuracy: mean over classes of recall TP / (TP + FN)."""

    _default_name = "mpa"
    _summary = _mean_over_classes("recall")


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class MeanIoU(ConfusionMatrixMetric):
    """Mean over classes of IoU TP / (TP + FP + FN).

    Not `keras.metrics.MeanIoU`: this one takes score maps, supports per-image
    aggregation and resolves empty classes with `zero_division`.
    """

    _default_name = "miou"
    _summary = _mean_over_classes("iou")


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class PixelAccuracy(ConfusionMatrixMetric):
    """Fraction of pixels labelled correctly."""

    _default_name = "pixel_accuracy"

    def _summary(self, cm):
        return _pixel_accuracy(cm, self.zero_division)


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class ClassDice(ConfusionMatrixMetric):
    """Dice of a single class; by default class 1, the mitotic figure."""

    def __init__(self, class_id=1, num_classes=2, name=None, **kwargs):
        if int(class_id) != class_id or not 0 <= class_id < num_classes:
            raise ValueError(f"class_id must be an integer in [0, {num_classes}); got {class_id!r}")
        self.class_id = int(class_id)
        # Set before super().__init__ builds the default name from it.
        self._default_name = "mitosis_dice" if class_id == 1 else f"class{class_id}_dice"
        super().__init__(num_classes=num_classes, name=name, **kwargs)

    def _summary(self, cm):
        return _per_class("dice", cm, self.zero_division)[..., self.class_id]

    def get_config(self):
        config = super().get_config()
        config["class_id"] = self.class_id
        return config


def default_metrics(num_classes=2):
    """A fresh list of the paper's metrics (pooled), for `model.compile`."""
    return [
        MeanDice(num_classes=num_classes),
        PaperMPA(num_classes=num_classes),
        MeanPixelAccuracy(num_classes=num_classes),
        MeanIoU(num_classes=num_classes),
        ClassDice(num_classes=num_classes),
    ]
