"""The comparison's resampling of scored images: detection F1 of MCSA-Unet against U-Net, checked by hand."""

import numpy as np
import pytest

from mitoseg_tf.compare import records as records_lib
from mitoseg_tf.compare.report import build_report, frame_bootstrap


def test_two_images_give_the_three_resamples_at_their_probabilities():
    # Image A: MCSA-Unet finds the figure U-Net misses. Image B: MCSA-Unet's false figure, U-Net nothing.
    treated = {0: [[1, 0, 0], [0, 1, 0]]}
    control = {0: [[0, 0, 1], [0, 0, 0]]}
    result = frame_bootstrap(treated, control)
    # Resamples {A, A} (1/4): F1 1 - 0; {A, B} (1/2): 2/3 - 0; {B, B} (1/4): 0 - 0, MCSA-Unet not better.
    assert result["difference"] == pytest.approx(2 / 3)  # both images once
    assert result["share_not_better"] == pytest.approx(0.25, abs=0.015)
    assert result["low"] == 0.0 and result["high"] == 1.0
    assert (result["seeds"], result["images"]) == ([0], 2)


def test_seeds_are_averaged_and_only_shared_seeds_count():
    treated = {0: [[2, 0, 0], [0, 0, 1]], 1: [[1, 0, 1], [1, 0, 0]], 5: [[9, 0, 0], [9, 0, 0]]}
    control = {0: [[1, 1, 1], [0, 0, 1]], 1: [[1, 0, 1], [1, 0, 0]]}
    result = frame_bootstrap(treated, control)
    # Seed 0: MCSA tp 2, fp 0, fn 1 -> F1 4/5; U-Net tp 1, fp 1, fn 2 -> 2/5. Seed 1: equal. Mean: (0.4 + 0) / 2.
    assert result["seeds"] == [0, 1] and result["difference"] == pytest.approx(0.2)


def test_a_network_better_on_every_image_is_never_not_better():
    treated = {s: [[1, 0, 0]] * 5 for s in (0, 1)}
    control = {s: [[0, 1, 1]] * 5 for s in (0, 1)}
    result = frame_bootstrap(treated, control)
    assert result["share_not_better"] == 0.0 and result["low"] == result["high"] == 1.0


def test_counts_of_other_images_are_refused_and_missing_ones_give_nothing():
    with pytest.raises(ValueError, match="same images"):
        frame_bootstrap({0: [[1, 0, 0]] * 3}, {0: [[1, 0, 0]] * 4})
    assert frame_bootstrap({0: None}, {0: [[1, 0, 0]]}) is None
    assert frame_bootstrap({1: [[1, 0, 0]]}, {0: [[1, 0, 0]]}) is None


def test_the_report_resamples_the_records_per_image_counts(tmp_path):
    for model, counts in (("mcsa_unet", [[1, 0, 0], [0, 1, 0]]), ("unet", [[0, 0, 1], [0, 0, 0]])):
        record = {
            "model": model,
            "seed": 0,
            "config_hash": model,
            "recipe_hash": "r",
            "config": {},
            "scores": {"validation": {"mean_dice": 0.5, "detection_f1": 0.5}},
            "measured_on": {"validation": "the validation slides"},
            "detection": {"validation_per_image": counts},
        }
        records_lib.write_record(str(tmp_path / f"{model}_s0"), record)
    result = build_report(str(tmp_path), log=lambda *a: None)
    (row,) = result["resampled"]
    assert row["split"] == "validation" and row["difference"] == pytest.approx(2 / 3)
    assert (
        "| validation (where the detection settings were chosen) | 0 | 2 | 0.6667 | 0.0000 to 1.0000 |"
        in result["markdown"]
    )
    np.testing.assert_allclose(row["share_not_better"], 0.25, atol=0.015)
