"""Segmentation metrics of the MCSA-Unet paper; docs/metrics.md has the definitions.

`pixel` holds the NumPy reference functions, `streaming` the Keras metrics for
`model.compile`; both compute the same numbers.
"""

from mitoseg_tf.metrics.pixel import (
    AGGREGATIONS,
    METRIC_NAMES,
    class_dice,
    confusion_matrices,
    confusion_matrix,
    labels_from_output,
    mean_dice,
    miou,
    mpa,
    paper_mpa,
    per_class_dice,
    per_class_iou,
    per_class_precision,
    per_class_recall,
    pixel_accuracy,
    segmentation_metrics,
)

# Imported eagerly (not lazily) so that importing the package registers the
# Keras metrics for deserialization: loading a compiled model that uses them
# must not depend on some earlier code having touched `streaming`.
from mitoseg_tf.metrics.streaming import (
    ClassDice,
    ConfusionMatrixMetric,
    MeanDice,
    MeanIoU,
    MeanPixelAccuracy,
    PaperMPA,
    PixelAccuracy,
    default_metrics,
)

__all__ = [
    "AGGREGATIONS",
    "METRIC_NAMES",
    "ClassDice",
    "ConfusionMatrixMetric",
    "MeanDice",
    "MeanIoU",
    "MeanPixelAccuracy",
    "PaperMPA",
    "PixelAccuracy",
    "class_dice",
    "confusion_matrices",
    "confusion_matrix",
    "default_metrics",
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
