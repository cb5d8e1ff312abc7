"""metrics.md's detection section: the settings detection.json holds, what chose them, and every score at them."""

import numpy as np

from mitoseg_tf.detection.evaluation import calibrate
from mitoseg_tf.training.run import detection_report

MPP = 0.25


def _map(centres, false_centres, side=200):
    """A probability map with a bright disk at each true centre and a dimmer one at each false one."""
    rows, cols = np.mgrid[:side, :side]
    probability = np.zeros((side, side), np.float32)
    for (r, c), value in [*((p, 0.95) for p in centres), *((p, 0.7) for p in false_centres)]:
        probability[np.hypot(rows - r, cols - c) <= 10] = value
    return probability.astype(np.float16), np.array(centres, np.float32).reshape(-1, 2), MPP


def test_the_report_names_the_chosen_settings_the_choices_and_every_score():
    maps = [_map([(50, 50), (150, 120)], [(100, 30)]), _map([(60, 140)], [(150, 40), (30, 30)])]
    settings = calibrate(maps, match_distance_um=5.0)
    settings["test"] = settings["validation"]
    settings["test_by_distance"] = settings["validation_by_distance"]
    text = detection_report(settings)
    assert f"minimum figure size {settings['min_area_um2']:g} um^2" in text
    assert f"threshold {settings['score_threshold']:.4g}" in text
    assert "tried 0, 5, 10" in text and "within 5 um" in text and "Never tuned on test" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| split")]
    labels = [row.split("|")[1].strip() + " @ " + row.split("|")[2].strip() for row in rows]
    assert labels == [
        "validation (where chosen) @ 5 um",
        "validation (where chosen) @ 8 um",
        "validation, each image's size and score thresholds chosen on the others @ 5 um",
        "test @ 5 um",
        "test @ 8 um",
    ]
    # the brighter disks are the true figures: the chosen threshold keeps them and drops the others
    first = rows[0].split("|")
    assert float(first[5]) == 1.0 and first[6:9] == [" 3 ", " 0 ", " 0 "]
