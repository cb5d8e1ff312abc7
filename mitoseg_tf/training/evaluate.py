"""``evaluate``: every zoo model scored the same way, on its primary ``mask`` output."""

import numpy as np

from mitoseg_tf.detection.evaluation import format_detection
from mitoseg_tf.inference import predict_image
from mitoseg_tf.metrics import pixel
from mitoseg_tf.models.outputs import PRIMARY_OUTPUT, primary_probabilities

METRIC_NAMES = ("mean_dice", "paper_mpa", "miou", "mpa", "mitosis_dice", "pixel_accuracy")


def _summarise(matrices, zero_division):
    pooled_cm = matrices.sum(axis=0)

    def scores(cm):
        return {
            "mean_dice": pixel.mean_dice(cm, zero_division=zero_division),
            "paper_mpa": pixel.paper_mpa(cm, zero_division=zero_division),
            "miou": pixel.miou(cm, zero_division=zero_division),
            "mpa": pixel.mpa(cm, zero_division=zero_division),
            "mitosis_dice": pixel.class_dice(cm, class_id=1, zero_division=zero_division),
            "pixel_accuracy": pixel.pixel_accuracy(cm),
        }

    per_image = [scores(cm) for cm in matrices]
    return {
        "pooled": {k: float(v) for k, v in scores(pooled_cm).items()},
        "per_image": {k: float(np.mean([s[k] for s in per_image])) for k in METRIC_NAMES},
    }


def _mask_of(target):
    if isinstance(target, dict):
        target = target[PRIMARY_OUTPUT]
    mask = np.asarray(target)
    return mask[..., 0] if mask.ndim == 4 else mask


def evaluate(model, data, *, threshold=0.5, zero_division=1.0, max_batches=None):
    """Score ``model`` on ``data`` (an iterable of ``(images, targets)`` batches).

    Returns ``{"model": {"pooled": {...}, "per_image": {...}},
    "all_background": {...same keys...}, "num_images": N}``: the paper's metrics
    (Mean Dice, paper MPA = mean precision, MIoU) and standard ones (MPA = mean
    recall, mitosis-class Dice, pixel accuracy), pooled over all pixels and
    averaged per image, next to what an all-background prediction scores.
    """
    num_classes = max(model.get_layer(PRIMARY_OUTPUT).output.shape[-1], 2)

    def pairs():
        for index, (images, targets) in enumerate(data):
            if max_batches is not None and index >= max_batches:
                break
            truth = _mask_of(targets).astype(np.int64)
            yield truth, pixel.labels_from_output(primary_probabilities(model, np.asarray(images)), threshold=threshold)

    return _score(pairs(), num_classes, zero_division, "evaluate: the dataset is empty; nothing to score.")


def _score(pairs, num_classes, zero_division, empty_message):
    """Summaries of the model's and an all-background prediction's per-image confusion matrices,
    from ``(truth, labels)`` batches of shape (N, H, W)."""
    model_cms, background_cms = [], []
    for truth, labels in pairs:
        model_cms.append(pixel.confusion_matrices(truth, labels, num_classes))
        background_cms.append(pixel.confusion_matrices(truth, np.zeros_like(truth), num_classes))
    if not model_cms:
        raise ValueError(empty_message)
    model_cms = np.concatenate(model_cms)
    return {
        "model": _summarise(model_cms, zero_division),
        "all_background": _summarise(np.concatenate(background_cms), zero_division),
        "num_images": int(model_cms.shape[0]),
    }


def evaluate_whole_images(model, examples, *, threshold=0.5, zero_division=1.0, progress=None, **predict_kwargs):
    """``evaluate`` on whole images of any size, predicted by sliding window (``inference.predict_image``).

    ``examples``: an iterable (or tf.data dataset) of dicts with ``image``
    (H, W, 3) and ``mask`` (H, W) or (H, W, 1). Every pixel of every image is
    scored exactly once, as a pathologist sees the field, not as crops.
    Keyword arguments go to ``predict_image`` (tile, overlap, batch_size, tta).
    ``progress``: a bar over images (None: only when stderr is a terminal; False: never).
    """
    examples = examples.as_numpy_iterator() if hasattr(examples, "as_numpy_iterator") else examples

    def pairs():
        from tqdm.auto import tqdm

        # A whole field takes seconds to minutes on a CPU: show that work is moving.
        bar = tqdm(
            examples, desc="whole images", unit="image", leave=False, disable=None if progress is None else not progress
        )
        for example in bar:
            truth = np.asarray(example["mask"]).astype(np.int64)
            truth = truth[..., 0] if truth.ndim == 3 else truth
            probability = predict_image(model, example["image"], **predict_kwargs)
            yield truth[None], (probability > threshold).astype(np.int64)[None]

    return _score(pairs(), 2, zero_division, "evaluate_whole_images: no images to score.")


def format_table(results, title=None):
    """A Markdown table of ``evaluate``'s results: one row per metric, pooled and per image."""
    labels = {
        "mean_dice": "Mean Dice (paper)",
        "paper_mpa": "MPA as the paper defines it (mean precision)",
        "miou": "MIoU (paper)",
        "mpa": "MPA, standard (mean recall)",
        "mitosis_dice": "Dice, mitosis class",
        "pixel_accuracy": "Pixel accuracy",
    }
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += [
        "| metric | pooled | per image | all-background pooled | all-background per image |",
        "|---|---|---|---|---|",
    ]
    m, b = results["model"], results["all_background"]
    for key in METRIC_NAMES:
        lines.append(
            f"| {labels[key]} | {m['pooled'][key]:.4f} | {m['per_image'][key]:.4f} | "
            f"{b['pooled'][key]:.4f} | {b['per_image'][key]:.4f} |"
        )
    lines.append(f"\n{results['num_images']} images.")
    if results.get("detection"):  # added by `mitoseg evaluate`: figure-level scores on whole images
        lines.append(format_detection(results["detection"]))
    return "\n".join(lines)
