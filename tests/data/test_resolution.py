"""``target_mpp``: every example resampled to one pixel size, as prediction resamples."""

import os

import numpy as np
import pytest
import tensorflow as tf
from format_fixtures import save, tissue

from mitoseg_tf.data.patches import make_tile_pipeline, patch_stream
from mitoseg_tf.data.resolution import resample_example
from mitoseg_tf.data.sources import load_source
from mitoseg_tf.inference.resample import to_resolution

TARGET = 0.25
FIGURE_UM = np.array([23.7, 31.1])  # (row, col) microns from the top-left corner of the field
FIELD_UM = 60.0


def _field(mpp):
    """A 60-um field at ``mpp`` with a dark 3-um-radius figure centred at FIGURE_UM, its mask and its centre."""
    side = int(round(FIELD_UM / mpp))
    centre = FIGURE_UM / mpp - 0.5  # pixel (r, c) covers microns [r, r + 1) * mpp
    rows, cols = np.mgrid[:side, :side]
    figure = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= (3.0 / mpp) ** 2
    image = tissue(side, side)
    image[figure] = (60, 30, 90)
    return image, figure.astype(np.uint8), centre


@pytest.mark.parametrize("mpp", [0.2273, 0.2456, 0.5])
def test_a_figure_stays_at_its_micron_position(mpp):
    image, mask, centre = _field(mpp)
    example = {
        "image": tf.constant(image),
        "mask": tf.constant(mask),
        "points": tf.constant([centre], tf.float32),
        "negatives": tf.zeros((0, 2)),
        "mpp": tf.constant(mpp, tf.float32),
    }
    out = {k: v.numpy() for k, v in resample_example(example, TARGET).items()}
    side = int(round(round(FIELD_UM / mpp) * mpp / TARGET))
    assert out["image"].shape == (side, side, 3) and out["image"].dtype == np.uint8 and out["mpp"] == np.float32(TARGET)
    assert set(np.unique(out["mask"])) == {0, 1}
    # the resampled centre, the mask's centroid and the dark pixels' centroid, back in microns
    found = {
        "point": out["points"][0],
        "mask": np.argwhere(out["mask"] > 0).mean(0),
        "image": np.argwhere(out["image"].astype(int).sum(-1) < 300).mean(0),
    }
    for what, rc in found.items():
        # a tenth of a micron: the size rounding to whole pixels moves a point by at most ~0.07 um here
        np.testing.assert_allclose((rc + 0.5) * TARGET, FIGURE_UM, atol=0.1, err_msg=what)
    # the figure keeps its area: pi * 3^2 um^2, within the outline's pixel rounding
    assert abs(out["mask"].sum() * TARGET**2 - np.pi * 9) < 2.0


@pytest.mark.parametrize("mpp", [0.2273, 0.5])
def test_images_are_resampled_as_prediction_resamples_them(mpp):
    image, mask, _ = _field(mpp)
    example = {"image": tf.constant(image), "mask": tf.constant(mask), "mpp": tf.constant(mpp, tf.float32)}
    ours = resample_example(example, TARGET)["image"].numpy()
    theirs = to_resolution(image, mpp, TARGET)
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1  # float rounding only


def test_within_one_percent_nothing_is_resampled():
    image, mask, centre = _field(0.2485)
    example = {
        "image": tf.constant(image),
        "mask": tf.constant(mask),
        "points": tf.constant([centre], tf.float32),
        "mpp": tf.constant(0.2485, tf.float32),
    }
    out = resample_example(example, TARGET)
    np.testing.assert_array_equal(out["image"].numpy(), image)
    np.testing.assert_array_equal(out["points"].numpy(), np.float32([centre]))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A ``folder`` dataset of two 0.5-um/px images with a 10x10 object at rows/cols 20-29."""
    monkeypatch.setenv("MITOSEG_PREPARED_DIR", str(tmp_path / "prepared"))
    root = tmp_path / "folder"
    for i in range(2):
        mask = np.zeros((64, 96), np.uint8)
        mask[20:30, 20:30] = 255
        save(os.path.join(root, "images", f"t{i}.png"), tissue(64, 96, seed=i))
        save(os.path.join(root, "masks", f"t{i}.png"), mask)
    return str(root)


def test_sources_and_pipelines_resample_to_the_target(folder):
    from mitoseg_tf.data.builders import load_dataset

    decoded = next(load_source("folder", "all", data_dir=folder, mpp=0.5, target_mpp=TARGET).as_numpy_iterator())
    assert decoded["image"].shape == (128, 192, 3) and decoded["mpp"] == np.float32(TARGET)
    # the object's centroid (24.5, 24.5) at 0.5 um/px is (49.5, 49.5) at 0.25
    np.testing.assert_allclose(decoded["points"], [[49.5, 49.5]])
    records = load_dataset("folder", "all", folder, decode=False, mpp=0.5)
    tiles = make_tile_pipeline(records, batch_size=1, tile=128, decoded=False, target_mpp=TARGET)
    shapes = [images.shape[1:3] for images, _ in tiles.as_numpy_iterator()]
    assert shapes == [(128, 128)] * 4 and tiles.cardinality().numpy() == 4  # 128x192 -> two 128 tiles, starts 0 and 64
    patches = patch_stream(
        records,
        patch_size=64,
        max_scale=1.0,
        positive_fraction=1.0,
        hard_negative_fraction=0.0,
        jitter=0.0,
        target_mpp=TARGET,
    )
    for patch in patches.take(4).as_numpy_iterator():
        # centred on the figure at (49.5, 49.5) of the 128x192 image: the 64-px patch starts at row/col 18
        np.testing.assert_array_equal(patch["corner"], [18, 18])
        assert patch["mask"][22:42, 22:42].all() and patch["mask"].sum() == 400
