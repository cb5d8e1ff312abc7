"""Hard-negative round: a first model's false figures mined, saved, and sampled as patch centres."""

import os
import types

import numpy as np
import pytest
from format_fixtures import save, tissue
from voc_fixtures import voc_xml

from mitoseg_tf.data.hard_negatives import (
    false_figures,
    load_hard_negatives,
    mine_hard_negatives,
    save_hard_negatives,
)
from mitoseg_tf.data.mixture import check_spec, component_stream

MPP = 0.25
TRUE = (40.0, 40.0)
FALSE = (150.0, 160.0)


def test_false_figures_are_those_beyond_the_match_distance_of_every_true_centre():
    predicted = [[41, 42], [150, 160], [40, 62], [40, 59]]
    # 20 px = 5 um at 0.25 um/px: (41, 42) is 2.2 px and (40, 59) 19 px from the figure; (40, 62) is 22 px
    np.testing.assert_array_equal(false_figures(predicted, [TRUE], 20.0), [[150, 160], [40, 62]])
    np.testing.assert_array_equal(false_figures(predicted, np.zeros((0, 2)), 20.0), predicted)


def test_mining_runs_a_detector_over_the_frames():
    frames = [
        {"image": np.zeros((200, 200, 3), np.uint8), "points": np.float32([TRUE]), "id": b"f1", "mpp": np.float32(MPP)},
        {"image": np.ones((200, 200, 3), np.uint8), "points": np.zeros((0, 2), np.float32), "id": "f2", "mpp": MPP},
    ]
    seen = []

    def detect(image, mpp):
        seen.append((int(image[0, 0, 0]), mpp))
        return np.float32([[41, 42], FALSE]) if image[0, 0, 0] == 0 else np.zeros((0, 2), np.float32)

    mined = mine_hard_negatives(detect, frames, match_distance_um=5.0)
    assert seen == [(0, MPP), (1, MPP)]
    assert sorted(mined) == ["f1", "f2"] and len(mined["f2"]) == 0
    np.testing.assert_array_equal(mined["f1"], [FALSE])
    # a Detector: predict(image, mpp) -> a prediction whose figures have a centroid
    figure = types.SimpleNamespace(centroid=FALSE)
    detector = types.SimpleNamespace(predict=lambda image, mpp: types.SimpleNamespace(figures=(figure,)))
    np.testing.assert_array_equal(mine_hard_negatives(detector, frames[:1])["f1"], [FALSE])
    with pytest.raises(ValueError, match="lacks"):
        mine_hard_negatives(detect, [{"image": frames[0]["image"], "id": "x", "mpp": MPP}])


def test_saved_negatives_load_back(tmp_path):
    path = save_hard_negatives(
        str(tmp_path / "run"), {"f1": np.float32([FALSE]), "f2": np.zeros((0, 2))}, source="test"
    )
    assert path.endswith("hard_negatives.json")
    for where in (str(tmp_path / "run"), path):
        loaded = load_hard_negatives(where)
        np.testing.assert_array_equal(loaded["f1"], [FALSE])
        assert loaded["f2"].shape == (0, 2)
    with pytest.raises(FileNotFoundError, match="mine_hard_negatives"):
        load_hard_negatives(str(tmp_path / "elsewhere"))


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A VOC folder of one 200x200 frame at 0.25 um/px with a figure at TRUE."""
    monkeypatch.setenv("MITOSEG_PREPARED_DIR", str(tmp_path / "prepared"))
    frames = tmp_path / "data" / "frames"
    save(os.path.join(frames, "f1.png"), tissue(200, 200))
    voc_xml(os.path.join(frames, "f1.xml"), [("mitosis", (30, 30, 50, 50))], size=(200, 200))
    return str(tmp_path / "data")


def _spec(hard_negatives=None):
    component = {"data": "voc", "data_dir": "frames", "positive_fraction": 0.0, "options": {"mpp": MPP}}
    if hard_negatives:
        component["hard_negatives"] = hard_negatives
    return check_spec(
        {"train": [component], "validation": {"data": "voc", "data_dir": "frames", "options": {"mpp": MPP}}}
    )


def _holds_false_figure(patches, side=40):
    """Whether each patch has FALSE within its central half (where a patch centred on it with jitter puts it)."""
    out = []
    for patch in patches.take(16).as_numpy_iterator():
        offset = np.asarray(FALSE) - (patch["corner"] + side / 2)
        out.append(bool((np.abs(offset) <= side / 4 + 1).all()))
    return out


def test_mined_false_figures_become_sampled_patch_centres(root, tmp_path):
    run = str(tmp_path / "round1")
    save_hard_negatives(run, {"f1": np.float32([FALSE])})
    # 0.1 hard-negative share x 10 fills the whole negative share: every patch is cut around the false figure
    mined = component_stream(_spec({"from_run": run, "oversample": 10}), 0, root, patch_size=32, seed=3)
    assert all(_holds_false_figure(mined))
    plain = component_stream(_spec(), 0, root, patch_size=32, seed=3)
    assert sum(_holds_false_figure(plain)) <= 2  # patches anywhere: a 20x20 window of a 200x200 frame is rarely hit


def test_negatives_mined_on_other_frames_or_bad_options_are_refused(root, tmp_path):
    run = str(tmp_path / "round1")
    save_hard_negatives(run, {"f1": np.float32([FALSE]), "validation_frame": np.float32([FALSE])})
    with pytest.raises(ValueError, match="e.g. validation_frame"):
        component_stream(_spec({"from_run": run, "oversample": 2}), 0, root, patch_size=32, seed=0)
    with pytest.raises(ValueError, match="oversample must be a number >= 1"):
        _spec({"from_run": run, "oversample": 0.5})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['times'\]"):
        _spec({"from_run": run, "times": 2})
