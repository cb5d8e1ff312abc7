"""One-to-one matching of detected figures to true figure centres; precision, recall, F1; threshold choice."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from mitoseg_tf.defaults import DEFAULT_MATCH_DISTANCE_UM  # noqa: F401 - detection/__init__ and callers import it from here


def _points(points, what):
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{what} must be an array of (row, col) points with shape (K, 2); got {points.shape}.")
    return points


def match_points(predicted, truth, max_distance):
    """Pair predictions with true centres one-to-one, each pair at most ``max_distance`` apart (inclusive).

    Maximises the number of pairs, then minimises their total distance
    (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``), so one
    prediction never counts for two figures and two predictions near one
    figure give one true positive and one false positive. Distances are in the
    units of the points (pixels when called with pixel coordinates).

    Returns ``(pairs, unmatched_predicted, unmatched_truth)``: a list of
    ``(predicted index, truth index)`` and the index arrays left over.
    """
    predicted, truth = _points(predicted, "predicted"), _points(truth, "truth")
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0; got {max_distance!r}.")
    pairs = []
    if len(predicted) and len(truth):
        distance = cdist(predicted, truth)
        feasible = distance <= max_distance
        # Only points with a partner in reach can pair; leaving the others out of the
        # assignment changes nothing and keeps it small when most predictions are far off.
        near_p, near_t = np.flatnonzero(feasible.any(1)), np.flatnonzero(feasible.any(0))
        if len(near_p):
            sub, reach = distance[np.ix_(near_p, near_t)], feasible[np.ix_(near_p, near_t)]
            # An infeasible pair costs more than any set of feasible ones, so the
            # optimum has the most feasible pairs first and the shortest ones second.
            big = (max_distance + 1.0) * (min(sub.shape) + 1)
            rows, cols = linear_sum_assignment(np.where(reach, sub, big))
            pairs = [(int(near_p[r]), int(near_t[c])) for r, c in zip(rows, cols) if reach[r, c]]
    matched_p = {p for p, _ in pairs}
    matched_t = {t for _, t in pairs}
    unmatched_p = np.array([i for i in range(len(predicted)) if i not in matched_p], dtype=np.int64)
    unmatched_t = np.array([i for i in range(len(truth)) if i not in matched_t], dtype=np.int64)
    return pairs, unmatched_p, unmatched_t


def detection_scores(tp, fp, fn):
    """Precision, recall and F1 from counts; a 0/0 ratio is 1 when nothing was wrong (tp = fp = fn = 0), else 0."""
    tp, fp, fn = int(tp), int(fp), int(fn)
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def score_images(images, max_distance_px, score_threshold=0.0):
    """Pooled detection counts and scores over images.

    ``images``: iterable of ``(predicted points (K, 2), predicted scores (K,), true points (M, 2), max distance)``
    or, when ``max_distance_px`` is given, of 3-tuples using it for every image.
    Predictions with score below ``score_threshold`` are dropped first.
    """
    tp = fp = fn = 0
    for item in images:
        predicted, scores, truth = item[:3]
        limit = item[3] if len(item) > 3 else max_distance_px
        predicted = _points(predicted, "predicted")
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(predicted):
            raise ValueError(f"got {len(scores)} scores for {len(predicted)} predicted points; give one score each.")
        predicted = predicted[scores >= score_threshold]
        pairs, unmatched_p, unmatched_t = match_points(predicted, truth, limit)
        tp, fp, fn = tp + len(pairs), fp + len(unmatched_p), fn + len(unmatched_t)
    return detection_scores(tp, fp, fn)


def select_threshold(images, max_distance_px=None):
    """The figure-score threshold that maximises pooled F1 over ``images`` (a validation split, never the test split).

    Tries every distinct predicted score (a figure is kept when its score is
    >= the threshold) and returns ``{"threshold", "f1", "precision",
    "recall", "tp", "fp", "fn"}`` of the best; ties go to the lowest
    threshold (the most figures kept). With no predicted figure at all the
    threshold is 0.0.

    Exactly what ``score_images`` would give at each threshold, computed once
    per image: figures with no true centre in reach are false at any threshold,
    so only the others are matched, once per distinct score among them.
    """
    images = [tuple(item) for item in images]
    thresholds = np.array([0.0] + sorted({float(s) for item in images for s in np.ravel(item[1])}))
    tp = np.zeros(len(thresholds), np.int64)
    kept = np.zeros(len(thresholds), np.int64)
    truths = 0
    for item in images:
        predicted, scores, truth = (
            _points(item[0], "predicted"),
            np.asarray(item[1], np.float64).reshape(-1),
            _points(item[2], "truth"),
        )
        limit = item[3] if len(item) > 3 else max_distance_px
        if len(scores) != len(predicted):
            raise ValueError(f"got {len(scores)} scores for {len(predicted)} predicted points; give one score each.")
        truths += len(truth)
        ordered = np.sort(scores)
        kept += len(scores) - np.searchsorted(ordered, thresholds, side="left")  # scores >= threshold
        if not len(truth) or not len(predicted):
            continue
        near = (cdist(predicted, truth) <= limit).any(1)
        near_scores = scores[near]
        for level in np.unique(near_scores):
            chosen = near_scores >= level
            matched = len(match_points(predicted[near][chosen], truth, limit)[0])
            # this many matches hold for every threshold that keeps exactly these near figures
            previous = near_scores[near_scores < level]
            lower = previous.max() if len(previous) else -np.inf
            tp[(thresholds > lower) & (thresholds <= level)] += matched
    best = None
    for index, threshold in enumerate(thresholds):
        result = detection_scores(tp[index], kept[index] - tp[index], truths - tp[index])
        if best is None or result["f1"] > best["f1"]:
            best = {"threshold": float(threshold), **result}
    return best
