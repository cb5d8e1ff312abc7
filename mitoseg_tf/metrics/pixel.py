"""Confusion-matrix segmentation metrics in plain NumPy.

These are the reference implementations: the streaming Keras metrics in
`mitoseg_tf.metrics.streaming` are tested against them, and evaluation scripts
use them directly on label arrays. See docs/metrics.md for the definitions and
for the misprints in the MCSA-Unet paper that these functions deliberately do
not reproduce.

Every per-class function takes a confusion matrix of shape (..., C, C) (rows =
truth, columns = prediction) so that a stack of per-image matrices is handled
by the same code as a single pooled one.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AGGREGATIONS",
    "METRIC_NAMES",
    "class_dice",
    "confusion_matrices",
    "confusion_matrix",
    "labels_from_output",
    "mean_dice",
    "miou",
    "mpa",
    "paper_mpa",
    "per_class_dice",
    "per_class_iou",
    "per_class_precision",
    "per_class_recall",
    "pixel_accuracy",
    "segmentation_metrics",
]

AGGREGATIONS = ("pooled", "per_image")
METRIC_NAMES = (
    "mean_dice",
    "paper_mpa",
    "miou",
    "mpa",
    "mitosis_dice",
    "pixel_accuracy",
)

# Bad label values are listed in error messages; a mask full of 255s would
# otherwise produce an unreadable message.
_MAX_BAD_VALUES_SHOWN = 10


# --------------------------------------------------------------------------
# Label handling
# --------------------------------------------------------------------------


def _match_shapes(y_true, y_pred):
    """Drops a trailing singleton channel so (N,H,W,1) pairs with (N,H,W)."""
    if y_true.shape == y_pred.shape:
        return y_true, y_pred
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "y_true and y_pred must hold one label per pixel with the same "
            f"shape; got y_true.shape={y_true.shape} and "
            f"y_pred.shape={y_pred.shape}. (Score maps of shape (N,H,W,C) "
            "must be turned into labels first, e.g. with labels_from_output.)"
        )
    return y_true, y_pred


def _check_labels(labels, num_classes, what):
    """Returns `labels` as int64, refusing anything that is not a class id.

    Silently wrapping or clipping out-of-range values (a mask saved as 0/255
    is the usual culprit) would produce plausible but wrong metrics, so this
    fails loudly instead.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.int64)
    if np.issubdtype(labels.dtype, np.floating) or labels.dtype.kind == "V":
        as_float = labels.astype(np.float64)
        non_integral = ~np.isfinite(as_float) | (as_float != np.round(as_float))
        if non_integral.any():
            bad = np.unique(as_float[non_integral])
            raise ValueError(
                f"{what} must hold integer class ids in [0, {num_classes}); "
                f"found non-integer values {_format_values(bad)}"
            )
        labels = as_float
    elif not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{what} must be an integer, boolean or integral float array; got dtype {labels.dtype}")
    out_of_range = (labels < 0) | (labels >= num_classes)
    if out_of_range.any():
        bad = np.unique(labels[out_of_range])
        raise ValueError(
            f"{what} must hold class ids in [0, {num_classes}); found values outside that range: {_format_values(bad)}"
        )
    return labels.astype(np.int64)


def _format_values(values):
    shown = ", ".join(str(int(v)) if float(v).is_integer() else str(float(v)) for v in values[:_MAX_BAD_VALUES_SHOWN])
    extra = len(values) - _MAX_BAD_VALUES_SHOWN
    if extra > 0:
        shown += f", ... ({extra} more)"
    return "[" + shown + "]"


def _check_num_classes(num_classes):
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    return int(num_classes)


def _prepare(y_true, y_pred, num_classes):
    num_classes = _check_num_classes(num_classes)
    y_true, y_pred = _match_shapes(np.asarray(y_true), np.asarray(y_pred))
    y_true = _check_labels(y_true, num_classes, "y_true")
    y_pred = _check_labels(y_pred, num_classes, "y_pred")
    return y_true, y_pred, num_classes


def labels_from_output(y_pred, threshold=0.5, from_logits=False):
    """Turns a model's score map (..., C) into integer labels (...).

    C > 1: argmax over the last axis (softmax is monotonic, so logits and
    probabilities give the same labels). C == 1: a sigmoid output, so the
    label is 1 where the probability exceeds `threshold`; with
    `from_logits=True` the sigmoid is applied first. Scores are cast to
    float32 first, as the streaming metrics do, so both agree on ties.
    """
    scores = np.asarray(y_pred).astype(np.float32)
    if scores.ndim < 1 or scores.shape[-1] < 1:
        raise ValueError(f"y_pred must have a channel axis last; got shape {scores.shape}")
    if scores.shape[-1] > 1:
        return np.argmax(scores, axis=-1).astype(np.int64)
    scores = scores[..., 0]
    if from_logits:
        with np.errstate(over="ignore"):
            scores = (1.0 / (1.0 + np.exp(-scores))).astype(np.float32)
    return (scores > np.float32(threshold)).astype(np.int64)


# --------------------------------------------------------------------------
# Confusion matrices
# --------------------------------------------------------------------------


def confusion_matrix(y_true, y_pred, num_classes):
    """One (C, C) int64 confusion matrix over every pixel of the two arrays.

    Rows are the true class, columns the predicted class.
    """
    y_true, y_pred, num_classes = _prepare(y_true, y_pred, num_classes)
    flat = (y_true * num_classes + y_pred).ravel()
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def confusion_matrices(y_true, y_pred, num_classes):
    """One confusion matrix per image: the first axis is the batch -> (N, C, C)."""
    y_true, y_pred, num_classes = _prepare(y_true, y_pred, num_classes)
    if y_true.ndim < 1:
        raise ValueError("confusion_matrices needs a leading batch axis")
    n = y_true.shape[0]
    cc = num_classes * num_classes
    # Offsetting each image's codes by its index lets one bincount fill every
    # image's matrix at once instead of a Python loop over the batch.
    codes = (y_true * num_classes + y_pred).reshape(n, -1)
    codes = codes + (np.arange(n, dtype=np.int64) * cc)[:, None]
    counts = np.bincount(codes.ravel(), minlength=n * cc)
    return counts.reshape(n, num_classes, num_classes).astype(np.int64)


# --------------------------------------------------------------------------
# Per-class ratios
# --------------------------------------------------------------------------


def _counts(cm):
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim < 2 or cm.shape[-1] != cm.shape[-2]:
        raise ValueError(f"expected a (..., C, C) confusion matrix; got shape {cm.shape}")
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    truth = cm.sum(axis=-1)  # pixels whose true class is c
    pred = cm.sum(axis=-2)  # pixels predicted as c
    return tp, pred - tp, truth - tp, truth, pred


def _ratio(num, den, truth, pred, zero_division):
    """num/den per class, with the empty cases resolved.

    A class absent from both truth and prediction has nothing to find and
    nothing wrongly found, which is perfect agreement: `zero_division`. A zero
    denominator while the class does occur on the other side (precision of a
    class present but never predicted, recall of a class predicted but
    absent) is a miss, not agreement, so it scores 0 rather than
    `zero_division`.
    """
    absent = (truth == 0) & (pred == 0)
    safe = np.where(den > 0, den, 1.0)
    value = np.where(den > 0, num / safe, 0.0)
    return np.where(absent, float(zero_division), value)


def per_class_precision(cm, zero_division=1.0):
    """TP / (TP + FP) per class."""
    tp, fp, _, truth, pred = _counts(cm)
    return _ratio(tp, tp + fp, truth, pred, zero_division)


def per_class_recall(cm, zero_division=1.0):
    """TP / (TP + FN) per class."""
    tp, _, fn, truth, pred = _counts(cm)
    return _ratio(tp, tp + fn, truth, pred, zero_division)


def per_class_iou(cm, zero_division=1.0):
    """TP / (TP + FP + FN) per class."""
    tp, fp, fn, truth, pred = _counts(cm)
    return _ratio(tp, tp + fp + fn, truth, pred, zero_division)


def per_class_dice(cm, zero_division=1.0):
    """2 TP / (2 TP + FP + FN) = 2|GT n S| / (|GT| + |S|) per class."""
    tp, fp, fn, truth, pred = _counts(cm)
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn, truth, pred, zero_division)


# --------------------------------------------------------------------------
# Summary metrics (each returns a float for a (C, C) matrix, an array for a
# stack of matrices)
# --------------------------------------------------------------------------


def _scalar_or_array(x):
    return float(x) if np.ndim(x) == 0 else x


def paper_mpa(cm, zero_division=1.0):
    """The MCSA-Unet paper's "MPA": mean over classes of *precision*."""
    return _scalar_or_array(per_class_precision(cm, zero_division).mean(axis=-1))


def mpa(cm, zero_division=1.0):
    """Standard mean pixel accuracy (FCN): mean over classes of recall."""
    return _scalar_or_array(per_class_recall(cm, zero_division).mean(axis=-1))


def miou(cm, zero_division=1.0):
    """Mean over classes of IoU."""
    return _scalar_or_array(per_class_iou(cm, zero_division).mean(axis=-1))


def mean_dice(cm, zero_division=1.0):
    """Mean over classes of Dice."""
    return _scalar_or_array(per_class_dice(cm, zero_division).mean(axis=-1))


def class_dice(cm, class_id=1, zero_division=1.0):
    """Dice of one class (default 1, the mitotic figure)."""
    dice = per_class_dice(cm, zero_division)
    num_classes = dice.shape[-1]
    if not 0 <= class_id < num_classes:
        raise ValueError(f"class_id must be in [0, {num_classes}); got {class_id}")
    return _scalar_or_array(dice[..., class_id])


def pixel_accuracy(cm, zero_division=1.0):
    """Fraction of pixels labelled correctly; `zero_division` for no pixels."""
    cm = np.asarray(cm, dtype=np.float64)
    correct = np.trace(cm, axis1=-2, axis2=-1)
    total = cm.sum(axis=(-2, -1))
    acc = np.where(total > 0, correct / np.where(total > 0, total, 1.0), zero_division)
    return _scalar_or_array(acc)


def _all_metrics(cm, zero_division):
    return {
        "mean_dice": mean_dice(cm, zero_division),
        "paper_mpa": paper_mpa(cm, zero_division),
        "miou": miou(cm, zero_division),
        "mpa": mpa(cm, zero_division),
        "mitosis_dice": class_dice(cm, 1, zero_division),
        "pixel_accuracy": pixel_accuracy(cm, zero_division),
    }


def segmentation_metrics(y_true, y_pred, num_classes=2, aggregation="pooled", zero_division=1.0):
    """All the paper's metrics for label arrays y_true, y_pred of shape (N, ...).

    aggregation="pooled": one confusion matrix over every pixel of every
    image, then each metric. aggregation="per_image": each metric on each
    image's own confusion matrix, then the mean over images (so an image with
    a single tiny mitosis weighs as much as one with many).

    Returns a dict with exactly the keys in METRIC_NAMES, values Python floats.
    """
    if aggregation == "pooled":
        cm = confusion_matrix(y_true, y_pred, num_classes)
        return {k: float(v) for k, v in _all_metrics(cm, zero_division).items()}
    if aggregation == "per_image":
        cms = confusion_matrices(y_true, y_pred, num_classes)
        if cms.shape[0] == 0:
            raise ValueError("per_image aggregation needs at least one image")
        per_image = _all_metrics(cms, zero_division)
        return {k: float(np.mean(v)) for k, v in per_image.items()}
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")
