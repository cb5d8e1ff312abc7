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

from mitoseg_tf.config import check_type
from mitoseg_tf.detection.figures import (
    DEFAULT_MIN_AREA_UM2,
    extract_figures,
    mask_centroids,
)
from mitoseg_tf.detection.matching import (
    DEFAULT_MATCH_DISTANCE_UM,
    detection_scores,
    score_images,
    select_threshold,
)
from mitoseg_tf.inference import predict_image
from mitoseg_tf.inference.resample import check_mpp

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


def predict_maps(model, source, *, mpp=DEFAULT_MPP, max_images=None, progress=None, **predict_kwargs):
    """Probability maps of every whole image of ``source`` (sliding window) with its true centres.

    Returns ``(maps, truth)``: one ``(probability float16 (H, W), true centres
    (K, 2), mpp)`` per image (float16 halves the memory the calibration grid
    holds), and where the true centres came from. ``progress``: a bar over
    images (None: only when stderr is a terminal; False: never).
    """
    from tqdm.auto import tqdm

    maps, from_points, from_mask = [], 0, 0
    # A whole field takes seconds to minutes on a CPU: show that work is moving.
    examples = tqdm(
        _examples(source),
        desc="whole images",
        unit="image",
        leave=False,
        total=max_images,
        disable=None if progress is None else not progress,
    )
    for index, example in enumerate(examples):
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
        maps.append((probability.astype(np.float16), truth, image_mpp))
    if not maps:
        raise ValueError("detection: the dataset is empty; nothing to score.")
    truth = "points" if not from_mask else "mask centroids" if not from_points else "points and mask centroids"
    return maps, truth


def figure_tables(maps, pixel_threshold, score="mean"):
    """Per map ``(centres (N, 2), areas um^2 (N,), scores (N,))`` of every figure above ``pixel_threshold``, smallest size included.

    The candidates ``calibrate`` chooses among; a second stage rescores these
    same centres and hands the tables back (``calibrate(..., tables=...)``).
    """
    tables = []
    for probability, _, image_mpp in maps:
        figures = extract_figures(
            probability, mpp=image_mpp, threshold=pixel_threshold, min_area_um2=0.0, score=score, outlines=False
        )
        tables.append(
            (
                np.array([f.centroid for f in figures], np.float64).reshape(-1, 2),
                np.array([f.area_um2 for f in figures], np.float64),
                np.array([f.score for f in figures], np.float64),
            )
        )
    return tables


def _records(maps, tables, match_distance_um, min_area_um2):
    records = []
    for (_, truth, image_mpp), (centres, areas, scores) in zip(maps, tables):
        keep = areas >= min_area_um2
        records.append((centres[keep], scores[keep], truth, match_distance_um / image_mpp))
    return records


def detections_from_maps(
    maps,
    *,
    match_distance_um=DEFAULT_MATCH_DISTANCE_UM,
    pixel_threshold=0.5,
    min_area_um2=DEFAULT_MIN_AREA_UM2,
    score="mean",
):
    """Per image ``(predicted centres, scores, true centres, match distance in px)``: ``matching.score_images``' input."""
    return _records(maps, figure_tables(maps, pixel_threshold, score), match_distance_um, min_area_um2)


def at_distance(records, from_um, to_um):
    """The same detections matched within ``to_um`` instead of ``from_um`` microns."""
    return [(centres, scores, truth, limit * to_um / from_um) for centres, scores, truth, limit in records]


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
    maps, truth = predict_maps(model, source, mpp=mpp, max_images=max_images, **predict_kwargs)
    options = dict(
        match_distance_um=match_distance_um, pixel_threshold=pixel_threshold, min_area_um2=min_area_um2, score=score
    )
    info = {
        "num_images": len(maps),
        "truth": truth,
        **{k: float(v) for k, v in options.items() if k != "score"},
        "figure_score": score,
        "tta": bool(predict_kwargs.get("tta", False)),
    }
    return detections_from_maps(maps, **options), info


def evaluate_detection(model, source, *, score_threshold=0.0, records=None, **kwargs):
    """Pooled detection precision / recall / F1 (plus tp, fp, fn and the settings) of ``model`` on ``source``.

    Keyword arguments are those of ``collect_detections``. ``records``: a list
    that receives its per-image records, e.g. to draw each image's hits and misses.
    """
    found, info = collect_detections(model, source, **kwargs)
    if records is not None:
        records.extend(found)
    return {**score_images(found, None, score_threshold), "score_threshold": float(score_threshold), **info}


# Minimum figure sizes tried on validation (square microns): from keeping specks to a little more than
# a 4-micron disk (50 um^2), the size of the training masks; the figure-score threshold is chosen at each.
MIN_AREA_CHOICES_UM2 = (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
# Detection is also reported under the MITOS-2012 contest's 8-micron rule, at the same settings.
REPORT_DISTANCES_UM = (5.0, 8.0)


def choose_settings(images, tables, match_distance_um, min_areas_um2):
    """``(min size, select_threshold's choice, records)`` with the best pooled F1 over ``images``.

    ``images``: per image ``(probability map or None, true centres, mpp)``, as
    ``predict_maps`` gives; ``tables``: per image ``(centres (N, 2), areas um^2 (N,),
    scores (N,))`` of every candidate figure, whatever scored them (the map's own
    blob score in ``calibrate``, a second-stage classifier in an experiment).
    """
    best = None
    for area in min_areas_um2:
        records = _records(images, tables, match_distance_um, area)
        chosen = select_threshold(records)
        if best is None or chosen["f1"] > best[1]["f1"]:
            best = (area, chosen, records)
    return best


def choose_candidates(images, alternatives, match_distance_um, min_areas_um2):
    """``(name, min size, choice, records)`` of the best of several candidate sets, ``alternatives`` = ``{name: tables}``.

    For a detector with a knob beyond size and score (the pixel threshold of
    the candidates, which score ranks them): every alternative gets
    ``choose_settings``, and the best pooled F1 wins (ties: the first given).
    """
    best = None
    for name, tables in alternatives.items():
        area, chosen, records = choose_settings(images, tables, match_distance_um, min_areas_um2)
        if best is None or chosen["f1"] > best[2]["f1"]:
            best = (name, area, chosen, records)
    return best


def per_image_counts(records, score_threshold):
    """``[[tp, fp, fn], ...]``, one per image of ``records`` (``_records``' form) at ``score_threshold``.

    Pooled F1 cannot be split into per-image parts, but these counts can be resampled: a comparison of two
    networks on the same images bootstraps over images from them (``compare.report``).
    """
    counts = []
    for item in records:
        scores = score_images([item], None, score_threshold)
        counts.append([scores["tp"], scores["fp"], scores["fn"]])
    return counts


def held_out_scores(images, tables, match_distance_um, min_areas_um2):
    """Pooled scores when each image is scored at the size and threshold ``choose_settings`` picks on all the others.

    The F1 ``calibrate`` reports is measured on the images its two settings
    were chosen on, so it is optimistic; leaving each image out of its own
    choice says by how much, with no extra data. ``tables`` may also be
    ``{name: tables}`` of alternative candidate sets: the choice on the other
    images then includes which set (``choose_candidates``), and ``"chosen"``
    lists the set used for each image. None for fewer than 2 images.
    """
    if len(images) < 2:
        return None
    alternatives = tables if isinstance(tables, dict) else {None: tables}
    tp = fp = fn = 0
    names = []
    for i in range(len(images)):
        others = [j for j in range(len(images)) if j != i]
        subsets = {k: [t[j] for j in others] for k, t in alternatives.items()}
        name, area, chosen, _ = choose_candidates(
            [images[j] for j in others], subsets, match_distance_um, min_areas_um2
        )
        result = score_images(
            _records([images[i]], [alternatives[name][i]], match_distance_um, area), None, chosen["threshold"]
        )
        tp, fp, fn = tp + result["tp"], fp + result["fp"], fn + result["fn"]
        names.append(name)
    scores = detection_scores(tp, fp, fn)
    return {**scores, "chosen": names} if isinstance(tables, dict) else scores


def calibrate(
    val_maps,
    *,
    truth="points",
    match_distance_um=DEFAULT_MATCH_DISTANCE_UM,
    pixel_threshold=0.5,
    score="mean",
    min_areas_um2=MIN_AREA_CHOICES_UM2,
    report_distances_um=REPORT_DISTANCES_UM,
    tables=None,
):
    """Minimum figure size and figure-score threshold maximising pooled F1 on validation maps (``predict_maps``).

    ``tables``: the candidates of ``figure_tables(val_maps, pixel_threshold)``
    with their scores replaced by a second stage (a figure classifier), so that
    a detector with and without it is chosen by one rule; ``score`` then names
    that stage for the record. None: the map's own blob ``score``.

    Ties go to the smaller minimum size, then the lower threshold. Returns the
    settings (what ``detection.json`` holds) with the validation scores under
    the choosing rule and under each of ``report_distances_um``, and
    ``validation_held_out``: the same choice made leaving each image out and
    scored on it (the honest estimate when there is no test split). Score a
    test split at the settings with ``score_settings``.
    """
    if tables is None:
        tables = figure_tables(val_maps, pixel_threshold, score)  # the sizes only filter the same figures
    elif len(tables) != len(val_maps):
        raise ValueError(f"calibrate: {len(tables)} candidate tables for {len(val_maps)} maps; give one per map.")
    area, chosen, records = choose_settings(val_maps, tables, match_distance_um, min_areas_um2)
    settings = {
        "score_threshold": chosen["threshold"],
        "min_area_um2": float(area),
        "pixel_threshold": float(pixel_threshold),
        "match_distance_um": float(match_distance_um),
        "figure_score": score,
        "truth": truth,
        "min_area_choices_um2": [float(a) for a in min_areas_um2],
        "validation": {k: v for k, v in chosen.items() if k != "threshold"},
        "validation_per_image": per_image_counts(records, chosen["threshold"]),
        "validation_held_out": held_out_scores(val_maps, tables, match_distance_um, min_areas_um2),
    }
    settings["validation_by_distance"] = _by_distance(records, settings, report_distances_um)
    return settings


def _by_distance(records, settings, distances_um):
    return {
        f"{d:g}um": score_images(
            at_distance(records, settings["match_distance_um"], d), None, settings["score_threshold"]
        )
        for d in distances_um
    }


def score_settings(
    model, source, settings, *, mpp=DEFAULT_MPP, report_distances_um=REPORT_DISTANCES_UM, **predict_kwargs
):
    """Detection scores of ``model`` on ``source`` at calibrated ``settings``: pooled under their rule, under each
    report rule, and ``per_image_counts`` under their rule."""
    records, _ = collect_detections(
        model,
        source,
        mpp=mpp,
        match_distance_um=settings["match_distance_um"],
        pixel_threshold=settings["pixel_threshold"],
        min_area_um2=settings.get("min_area_um2", DEFAULT_MIN_AREA_UM2),
        score=settings.get("figure_score", "mean"),
        **predict_kwargs,
    )
    return (
        score_images(records, None, settings["score_threshold"]),
        _by_distance(records, settings, report_distances_um),
        per_image_counts(records, settings["score_threshold"]),
    )


def calibrate_model(
    model, validation, test=None, *, mpp=DEFAULT_MPP, match_distance_um=DEFAULT_MATCH_DISTANCE_UM, tta=False
):
    """What a run saves as detection.json: settings chosen on ``validation``, ``test`` (if any) scored at them.

    With ``tta`` every map is the average over the 8 flips / quarter turns, and
    the settings say so: thresholds chosen on averaged maps only hold for them.
    """
    maps, truth = predict_maps(model, validation, mpp=mpp, tta=tta)
    settings = calibrate(maps, truth=truth, match_distance_um=match_distance_um)
    settings["test"], settings["test_by_distance"], settings["test_per_image"] = (
        score_settings(model, test, settings, mpp=mpp, tta=tta) if test is not None else (None, None, None)
    )
    settings["mpp"] = mpp
    settings["tta"] = bool(tta)
    return settings


def save_detection_settings(run_dir, settings):
    """Write ``settings`` (``calibrate``'s result plus e.g. ``mpp``) as ``detection.json`` in ``run_dir``."""
    path = os.path.join(run_dir, DETECTION_FILE)
    with open(path, "w") as fh:
        json.dump(settings, fh, indent=2)
    return path


# The settings detection.json holds and their types (detector.settings.DetectionSettings checks its own, too).
SETTING_TYPES = {
    "pixel_threshold": float,
    "score_threshold": float,
    "min_area_um2": float,
    "tta": bool,
    "figure_score": str,
    "mpp": float,
    "match_distance_um": float,
}


def load_detection_settings(run_dir):
    """``detection.json`` of a run folder, or None when the run has none.

    A file cut short, or a setting of the wrong type (``"tta": "false"``), is a
    ValueError naming the file and the field.
    """
    path = os.path.join(run_dir, DETECTION_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        try:
            settings = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON (cut short or edited?): {err}.") from None
    if not isinstance(settings, dict) or "score_threshold" not in settings:
        raise ValueError(f"{path} is not a detection settings file (no 'score_threshold').")
    for name, annotation in SETTING_TYPES.items():
        if settings.get(name) is not None:
            check_type(settings[name], annotation, name, f"{path}: ")
    return settings


def detection_for_checkpoint(model, source, checkpoint, *, data=None, mpp=None, **kwargs):
    """``evaluate_detection`` with the settings a run saved beside ``checkpoint`` (its ``detection.json``).

    The figure-score and pixel thresholds and the minimum figure size come from
    the run folder when it has them (else 0, 0.5 and the default size); ``mpp`` from the examples, else the argument, else
    the named source's (``source_mpp(data)``).
    """
    saved = load_detection_settings(os.path.dirname(os.path.abspath(checkpoint))) or {}
    if kwargs.get("tta") is None:
        kwargs["tta"] = saved.get("tta", False)
    kwargs.setdefault("pixel_threshold", saved.get("pixel_threshold", 0.5))
    kwargs.setdefault("min_area_um2", saved.get("min_area_um2", DEFAULT_MIN_AREA_UM2))
    return evaluate_detection(
        model,
        source,
        score_threshold=saved.get("score_threshold", 0.0),
        mpp=source_mpp(data) if mpp is None else check_mpp(mpp, "the mpp given for the detection scores (--mpp)"),
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
