"""Detection metrics of a model on whole images, and the score threshold chosen on validation.

Data contract: an example is a dict with ``image`` uint8 (H, W, 3) and
``mask`` (H, W), and optionally ``points`` float32 (K, 2) (row, col) figure
centres and ``mpp`` (microns per pixel). Where ``points`` is missing, the true
centres are the centroids of the ground-truth mask's connected components
(``figures.mask_centroids``; touching figures count once). Where ``mpp`` is
missing, ``mpp`` given by the caller is used (``source_mpp`` knows the
built-in sources).

The chosen threshold lives in ``detection.json`` in the run folder, beside
``best.keras``; ``mitoseg predict`` reads it from there.
"""

import json
import os

import numpy as np

from mitoseg_tf.detection.figures import (
    DEFAULT_MIN_AREA_UM2,
    extract_figures,
    mask_centroids,
)
from mitoseg_tf.detection.matching import (
    DEFAULT_MATCH_DISTANCE_UM,
    score_images,
    select_threshold,
)

DETECTION_FILE = "detection.json"
DEFAULT_MPP = 0.25
# The synthetic set is drawn at roughly 0.5 um/px (mitoseg_tf/data/synthetic.py).
_SOURCE_MPP = {"synthetic": 0.5, "synthetic_tfds": 0.5}


def source_mpp(name, default=DEFAULT_MPP):
    """Microns per pixel of a named built-in source whose examples do not carry ``mpp``."""
    return _SOURCE_MPP.get(name, default)


def _examples(source):
    # tf.data datasets become NumPy without this module importing TensorFlow.
    return source.as_numpy_iterator() if hasattr(source, "as_numpy_iterator") else iter(source)


def collect_detections(
    model,
    source,
    *,
    mpp=DEFAULT_MPP,
    match_distance_um=DEFAULT_MATCH_DISTANCE_UM,
    pixel_threshold=0.5,
    min_area_um2=DEFAULT_MIN_AREA_UM2,
    score="mean",
    max_images=None,
    **predict_kwargs,
):
    """Predict every whole image of ``source`` (sliding window) and pair its figures with the true centres.

    Returns ``(records, info)``: one ``(predicted centres, scores, true centres,
    match distance in px)`` per image, the input of ``matching.score_images`` /
    ``select_threshold``; ``info`` says where the true centres came from.
    """
    from mitoseg_tf.inference import predict_image

    records, from_points, from_mask = [], 0, 0
    for index, example in enumerate(_examples(source)):
        if max_images is not None and index >= max_images:
            break
        if "image" not in example:
            raise ValueError(f"detection: example {index} has no 'image'; keys: {sorted(example)}.")
        image_mpp = float(np.asarray(example["mpp"])) if "mpp" in example else float(mpp)
        if "points" in example:
            truth = np.asarray(example["points"], np.float32).reshape(-1, 2)
            from_points += 1
        elif "mask" in example:
            truth = mask_centroids(example["mask"])
            from_mask += 1
        else:
            raise ValueError(f"detection: example {index} has neither 'points' nor 'mask' to score against.")
        probability = predict_image(model, np.asarray(example["image"]), **predict_kwargs)
        figures = extract_figures(
            probability, mpp=image_mpp, threshold=pixel_threshold, min_area_um2=min_area_um2, score=score
        )
        centres = np.array([f.centroid for f in figures], np.float64).reshape(-1, 2)
        records.append((centres, np.array([f.score for f in figures]), truth, match_distance_um / image_mpp))
    if not records:
        raise ValueError("detection: the dataset is empty; nothing to score.")
    info = {
        "num_images": len(records),
        "truth": "points" if not from_mask else "mask centroids" if not from_points else "points and mask centroids",
        "match_distance_um": float(match_distance_um),
        "pixel_threshold": float(pixel_threshold),
        "min_area_um2": float(min_area_um2),
        "figure_score": score,
    }
    return records, info


def evaluate_detection(model, source, *, score_threshold=0.0, **kwargs):
    """Pooled detection precision / recall / F1 (plus tp, fp, fn and the settings) of ``model`` on ``source``.

    Keyword arguments are those of ``collect_detections``.
    """
    records, info = collect_detections(model, source, **kwargs)
    return {**score_images(records, None, score_threshold), "score_threshold": float(score_threshold), **info}


def calibrate(val_records, test_records, info):
    """Threshold chosen on validation records, and test scores at that threshold (what a run saves)."""
    chosen = select_threshold(val_records)
    test = score_images(test_records, None, chosen["threshold"])
    return {
        "score_threshold": chosen["threshold"],
        "validation": {k: v for k, v in chosen.items() if k != "threshold"},
        "test": test,
        **{k: v for k, v in info.items() if k != "num_images"},
    }


def save_detection_settings(run_dir, settings):
    """Write ``settings`` (``calibrate``'s result plus e.g. ``mpp``) as ``detection.json`` in ``run_dir``."""
    path = os.path.join(run_dir, DETECTION_FILE)
    with open(path, "w") as fh:
        json.dump(settings, fh, indent=2)
    return path


def load_detection_settings(run_dir):
    """``detection.json`` of a run folder, or None when the run has none."""
    path = os.path.join(run_dir, DETECTION_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        settings = json.load(fh)
    if not isinstance(settings, dict) or "score_threshold" not in settings:
        raise ValueError(f"{path} is not a detection settings file (no 'score_threshold').")
    return settings


def detection_for_checkpoint(model, source, checkpoint, *, data=None, mpp=None, **kwargs):
    """``evaluate_detection`` with the settings a run saved beside ``checkpoint`` (its ``detection.json``).

    The figure-score and pixel thresholds come from the run folder when it has
    them (else 0 and 0.5); ``mpp`` from the examples, else the argument, else
    the named source's (``source_mpp(data)``).
    """
    saved = load_detection_settings(os.path.dirname(os.path.abspath(checkpoint))) or {}
    kwargs.setdefault("pixel_threshold", saved.get("pixel_threshold", 0.5))
    return evaluate_detection(
        model,
        source,
        score_threshold=saved.get("score_threshold", 0.0),
        mpp=mpp or source_mpp(data),
        **kwargs,
    )


def format_detection(result):
    """Markdown lines for ``evaluate_detection``'s result, printed under the pixel metrics."""
    return "\n".join(
        [
            "",
            f"Detection on whole images (true centres: {result['truth']}; match within "
            f"{result['match_distance_um']:g} um; figure score >= {result['score_threshold']:.3g}):",
            "",
            "| precision | recall | F1 | TP | FP | FN |",
            "|---|---|---|---|---|---|",
            f"| {result['precision']:.4f} | {result['recall']:.4f} | {result['f1']:.4f} | {result['tp']} | "
            f"{result['fp']} | {result['fn']} |",
        ]
    )
