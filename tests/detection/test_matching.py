"""Hand-made matching cases and threshold selection."""

import numpy as np
import pytest

from mitoseg_tf.detection import (
    detection_scores,
    match_points,
    score_images,
    select_threshold,
)


def test_two_predictions_near_one_truth_give_one_tp_and_one_fp():
    pairs, fp, fn = match_points([[10, 10], [10, 13]], [[10, 12]], max_distance=5)
    assert pairs == [(1, 0)]  # the closer one (1 px) wins over the one 2 px away
    assert fp.tolist() == [0] and fn.tolist() == []


def test_one_prediction_between_two_truths_counts_once():
    pairs, fp, fn = match_points([[10, 10]], [[10, 6], [10, 14]], max_distance=5)
    assert len(pairs) == 1 and fp.tolist() == [] and len(fn) == 1
    assert detection_scores(1, 0, 1) == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": 2 / 3}


def test_distance_exactly_at_the_limit_matches_and_just_beyond_does_not():
    assert len(match_points([[0, 0]], [[3, 4]], max_distance=5.0)[0]) == 1  # distance exactly 5
    assert len(match_points([[0, 0]], [[3, 4]], max_distance=4.999)[0]) == 0


def test_matching_maximises_pairs_rather_than_taking_the_nearest_greedily():
    # Greedy nearest-first pairs p0-t1 (distance 1) and leaves p1, t0 apart (distance 7 > 5): 1 pair.
    # The optimum pairs p0-t0 (4) and p1-t1 (3): 2 pairs.
    predicted = [[0, 4], [0, 8]]
    truth = [[0, 0], [0, 5]]
    pairs, fp, fn = match_points(predicted, truth, max_distance=5)
    assert sorted(pairs) == [(0, 0), (1, 1)] and len(fp) == 0 and len(fn) == 0


def test_empty_cases():
    pairs, fp, fn = match_points(np.zeros((0, 2)), [[1, 1]], 5)
    assert pairs == [] and fn.tolist() == [0]
    assert detection_scores(0, 0, 0)["f1"] == 1.0
    # 0/0 is 1 only for a perfect empty result; false positives on an empty image score 0 everywhere
    assert detection_scores(0, 2, 0) == {"tp": 0, "fp": 2, "fn": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        match_points([1, 2, 3], [[1, 1]], 5)


def test_threshold_selection_maximises_f1_on_the_given_split():
    # image 1: a true figure found with score .9, a false one with .3; image 2: truth found with .6, false .2
    records = [
        ([[10, 10], [50, 50]], [0.9, 0.3], [[11, 10]], 5.0),
        ([[20, 20], [80, 80]], [0.6, 0.2], [[20, 22], [90, 90]], 5.0),
    ]
    # t=.2: tp2 fp2 fn1 -> 4/7; t=.3: tp2 fp1 fn1 -> 4/6; t=.6: tp2 fp0 fn1 -> 4/5; t=.9: tp1 fp0 fn2 -> 2/4
    best = select_threshold(records)
    assert best["threshold"] == 0.6 and best["f1"] == pytest.approx(0.8)
    assert (best["tp"], best["fp"], best["fn"]) == (2, 0, 1)
    assert score_images(records, None, 0.3)["f1"] == pytest.approx(2 / 3)


def test_threshold_ties_go_to_the_lowest_and_no_predictions_give_zero():
    records = [([[0, 0]], [0.7], [[0, 1]], 5.0)]
    assert select_threshold(records)["threshold"] == 0.0 and select_threshold(records)["f1"] == 1.0
    assert select_threshold([(np.zeros((0, 2)), [], [[1, 1]], 5.0)])["threshold"] == 0.0


def test_threshold_choice_equals_scoring_every_threshold_one_by_one():
    """select_threshold matches only figures in reach, once per image; it must agree with score_images everywhere."""
    rng = np.random.default_rng(1)
    for _ in range(100):
        images = []
        for _ in range(rng.integers(1, 4)):
            k, m = rng.integers(0, 8), rng.integers(0, 5)
            images.append((rng.random((k, 2)) * 30, np.round(rng.random(k), 1), rng.random((m, 2)) * 30, 6.0))
        best = {"threshold": 0.0, **score_images(images, None, 0.0)}
        for threshold in sorted({float(s) for item in images for s in item[1]}):
            result = score_images(images, None, threshold)
            if result["f1"] > best["f1"]:
                best = {"threshold": threshold, **result}
        assert select_threshold(images) == best
