"""Choosing the minimum figure size and the figure-score threshold on validation maps, and the 5/8-micron reports."""

import numpy as np
import pytest
from shifted_model import corner_reader

from mitoseg_tf.detection.evaluation import (
    at_distance,
    calibrate,
    calibrate_model,
    choose_candidates,
    detections_from_maps,
    figure_tables,
    held_out_scores,
)


def _blob(probability, centre, side, value):
    r, c = centre
    probability[r - side // 2 : r - side // 2 + side, c - side // 2 : c - side // 2 + side] = value


def _validation_maps():
    """One 100x100 map at 0.5 um/px (a pixel is 0.25 um^2); four true figures.

    - (20, 20) and (20, 70): found, 8x8 px = 16 um^2, scores 0.9 and 0.8;
    - (70, 20): a prediction at (70, 33), 13 px = 6.5 um away: wrong under 5 um, right under 8 um; score 0.85;
    - (70, 70): missed; a 3x3 px speck (2.25 um^2) scoring 0.95 sits at (90, 90).
    """
    probability = np.zeros((100, 100), np.float32)
    _blob(probability, (20, 20), 8, 0.9)
    _blob(probability, (20, 70), 8, 0.8)
    _blob(probability, (70, 33), 8, 0.85)
    _blob(probability, (90, 90), 3, 0.95)
    truth = np.array([[20, 20], [20, 70], [70, 20], [70, 70]], np.float32)
    return [(probability.astype(np.float16), truth - 0.5, 0.5)]  # an 8x8 blob's centroid is half a pixel off


def test_the_smallest_size_that_drops_the_speck_and_its_best_threshold_are_chosen():
    settings = calibrate(_validation_maps(), min_areas_um2=(0.0, 5.0, 10.0, 20.0))
    # Hand count at 5 um. Size 0 keeps the speck: best F1 4/8 (tp 2, fp 2, fn 2) at threshold 0.
    # Sizes 5 and 10 drop it: tp 2, fp 1, fn 2 -> F1 4/7 at 0 and at 0.8 (ties keep the lowest threshold);
    # at 0.85 tp 1, fp 1 -> 2/6; at 0.9 tp 1, fp 0 -> 2/5. Size 20 drops every 16-um^2 figure: F1 0.
    assert settings["min_area_um2"] == 5.0 and settings["score_threshold"] == 0.0
    assert settings["validation"]["f1"] == pytest.approx(4 / 7)
    assert (settings["validation"]["tp"], settings["validation"]["fp"], settings["validation"]["fn"]) == (2, 1, 2)
    five, eight = settings["validation_by_distance"]["5um"], settings["validation_by_distance"]["8um"]
    assert five["f1"] == pytest.approx(4 / 7)
    # Under 8 um the figure 6.5 um from (70, 20) counts: tp 3, fp 0, fn 1 -> F1 6/7.
    assert (eight["tp"], eight["fp"], eight["fn"]) == (3, 0, 1) and eight["f1"] == pytest.approx(6 / 7)
    assert settings["min_area_choices_um2"] == [0.0, 5.0, 10.0, 20.0] and settings["match_distance_um"] == 5.0


def test_per_image_counts_add_up_to_the_pooled_ones():
    # The hand-counted field of _validation_maps, and a second field with one found figure and one speck.
    probability = np.zeros((60, 60), np.float32)
    _blob(probability, (20, 20), 8, 0.9)
    _blob(probability, (50, 50), 3, 0.95)
    second = (probability, np.array([[19.5, 19.5]], np.float32), 0.5)
    settings = calibrate(_validation_maps() + [second], min_areas_um2=(0.0, 5.0))
    # Size 5 drops both specks; threshold 0: field 1 tp 2, fp 1, fn 2 (as above), field 2 tp 1, fp 0, fn 0.
    assert settings["min_area_um2"] == 5.0 and settings["score_threshold"] == 0.0
    assert settings["validation_per_image"] == [[2, 1, 2], [1, 0, 0]]
    pooled = settings["validation"]
    assert [pooled["tp"], pooled["fp"], pooled["fn"]] == [3, 1, 2]


def test_a_higher_threshold_wins_when_it_removes_false_figures():
    maps = _validation_maps()
    probability, truth, mpp = maps[0]
    probability = probability.astype(np.float32)
    _blob(probability, (45, 45), 8, 0.5)  # a large false figure with a low score
    _blob(probability, (45, 90), 8, 0.55)  # and another
    settings = calibrate([(probability, truth, mpp)], min_areas_um2=(0.0, 5.0))
    # size 5: at 0.8 tp 2, fp 1, fn 2 -> 4/7 beats threshold 0 (fp 3: 4/9)
    assert settings["min_area_um2"] == 5.0 and settings["score_threshold"] == pytest.approx(0.8, abs=1e-3)
    assert settings["validation"]["f1"] == pytest.approx(4 / 7)


def test_a_second_stage_rescores_the_same_candidates_and_the_same_rule_chooses():
    maps = _validation_maps()
    ((centres, areas, scores),) = figure_tables(maps, 0.5)
    # The four blobs of _validation_maps: three of 8x8 px (16 um^2 at 0.5 um/px) and the 3x3 px speck (2.25).
    assert sorted(areas) == [2.25, 16.0, 16.0, 16.0] and sorted(np.round(scores, 2)) == [0.8, 0.85, 0.9, 0.95]
    # A classifier sure of the two found figures (row 20) and against the misplaced one and the speck.
    rescored = np.where(centres[:, 0] < 30, 0.7, 0.2)
    settings = calibrate(maps, tables=[(centres, areas, rescored)], score="classifier", min_areas_um2=(0.0, 5.0))
    # Hand count at 5 um: threshold 0.7 keeps the two true ones, tp 2, fp 0, fn 2 -> F1 2/3 at either size
    # (ties keep size 0); threshold 0.2 adds both false ones -> 1/2. The map's own scores reach 4/7 (above).
    assert settings["min_area_um2"] == 0.0 and settings["score_threshold"] == pytest.approx(0.7)
    assert (settings["validation"]["tp"], settings["validation"]["fp"], settings["validation"]["fn"]) == (2, 0, 2)
    assert settings["validation"]["f1"] == pytest.approx(2 / 3) and settings["figure_score"] == "classifier"
    with pytest.raises(ValueError, match="1 maps"):
        calibrate(maps, tables=[(centres, areas, rescored)] * 2)


def test_records_rescale_to_another_matching_distance():
    records = detections_from_maps(_validation_maps(), match_distance_um=5.0, min_area_um2=5.0)
    ((centres, scores, truth, limit),) = records
    assert limit == pytest.approx(10.0) and len(centres) == 3 and sorted(np.round(scores, 2)) == [0.8, 0.85, 0.9]
    ((_, _, _, wider),) = at_distance(records, 5.0, 8.0)
    assert wider == pytest.approx(16.0)


def _two_fields():
    """Two 60x60 maps at 0.5 um/px, each with one true figure (found) and one false one, 8x8 px blobs.

    Field A: true figure scores 0.9, false 0.7. Field B: true 0.6, false 0.8.
    """
    maps = []
    for true_score, false_score in ((0.9, 0.7), (0.6, 0.8)):
        probability = np.zeros((60, 60), np.float32)
        _blob(probability, (15, 15), 8, true_score)
        _blob(probability, (45, 45), 8, false_score)
        maps.append((probability, np.array([[14.5, 14.5]], np.float32), 0.5))
    return maps


def test_held_out_scores_each_field_at_the_settings_chosen_on_the_others():
    settings = calibrate(_two_fields(), min_areas_um2=(0.0,))
    # Pooled, thresholds 0 and 0.6 keep all four: tp 2, fp 2 -> F1 4/6; 0.9 keeps A's true one only:
    # tp 1, fn 1 -> 2/3 as well, and ties keep the lowest threshold.
    assert settings["score_threshold"] == 0.0 and settings["validation"]["f1"] == pytest.approx(2 / 3)
    held_out = settings["validation_held_out"]
    # A at B's choice (0: B alone gives 2/3 at 0 and 0 at 0.8): tp 1, fp 1.
    # B at A's choice (0.9: A alone gives F1 1 there): nothing kept, fn 1.  Pooled: tp 1, fp 1, fn 1 -> 1/2.
    assert (held_out["tp"], held_out["fp"], held_out["fn"]) == (1, 1, 1) and held_out["f1"] == pytest.approx(0.5)


def test_held_out_choice_among_candidate_sets_is_made_on_the_other_fields():
    # Two fields at 1 um/px, one true figure each at (10, 10); every candidate 10 um^2, 5-um rule.
    images = [(None, np.array([[10.0, 10.0]]), 1.0)] * 2

    def table(*candidates):
        return (
            np.array([c[:2] for c in candidates], float).reshape(-1, 2),
            np.full(len(candidates), 10.0),
            np.array([c[2] for c in candidates], float),
        )

    sets = {
        "a": [table((10, 10, 0.9), (50, 50, 0.2)), table((10, 10, 0.3), (50, 50, 0.8))],
        "b": [table((50, 50, 0.5)), table((10, 10, 0.9))],
    }
    # Field 0 held out: on field 1, "b" scores F1 1 (threshold 0, the lowest of the ties) against "a"'s 2/3;
    # "b" at 0 on field 0 keeps its false figure: fp 1, fn 1.
    # Field 1 held out: on field 0, "a" at 0.9 scores F1 1; on field 1 that drops both: fn 1.
    held_out = held_out_scores(images, sets, 5.0, (0.0,))
    assert held_out["chosen"] == ["b", "a"]
    assert (held_out["tp"], held_out["fp"], held_out["fn"]) == (0, 1, 2) and held_out["f1"] == 0.0
    name, area, chosen, _ = choose_candidates(images, sets, 5.0, (0.0,))
    # Both fields: "a" at 0.3 keeps both true figures and field 1's false one (F1 0.8); "b" reaches 2/3 at 0.9.
    assert name == "a" and chosen["threshold"] == 0.3 and chosen["f1"] == pytest.approx(0.8)


def test_one_field_has_no_held_out_estimate():
    assert calibrate(_two_fields()[:1], min_areas_um2=(0.0,))["validation_held_out"] is None


@pytest.mark.parametrize("tta, expected", [(False, (0, 1, 1)), (True, (1, 0, 0))])
def test_calibration_on_averaged_maps_finds_the_figure_a_shifted_map_misses(tta, expected):
    image = np.full((96, 96, 3), 230, np.uint8)
    rows, cols = np.ogrid[:96, :96]
    image[(rows - 48) ** 2 + (cols - 48) ** 2 <= 10**2] = 20
    example = {"image": image, "points": np.array([[48.0, 48.0]], np.float32), "mpp": np.float32(1.0)}
    settings = calibrate_model(corner_reader(), [example], mpp=1.0, match_distance_um=5.0, tta=tta)
    # Plain: the figure's centre is (52, 44), 5.66 um away at 1 um/px -> one false figure, one miss.
    # Averaged: it is centred on (48, 48) -> found.
    found = settings["validation"]
    assert (found["tp"], found["fp"], found["fn"]) == expected and settings["tta"] is tta
    assert settings["validation_by_distance"]["8um"]["tp"] == 1  # 5.66 um is within the contest's 8 um either way
