"""Tests of the synthetic mitosis dataset and its TFDS builder."""

import ast
import importlib

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.color import rgb2hed
from skimage.morphology import convex_hull_image

from mitoseg_tf.data import synthetic
from mitoseg_tf.data.synthetic import (
    DEFAULT_SIZES,
    SPLITS,
    generate_split,
    generate_tile,
    load_arrays,
    tile_seed,
)

EIGHT = np.ones((3, 3), dtype=bool)


def test_same_seed_same_tile_and_different_seeds_differ():
    a, b, c = generate_tile(7, 96), generate_tile(7, 96), generate_tile(8, 96)
    for key in ("image", "mask", "points"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])


def test_tile_seeds_are_distinct_and_depend_on_base_seed():
    seeds = {tile_seed(0, split, i) for split in SPLITS for i in range(50)}
    assert len(seeds) == 3 * 50
    assert tile_seed(0, "train", 0) != tile_seed(1, "train", 0)
    assert tile_seed(0, "train", 3) == tile_seed(0, "train", 3)


@pytest.mark.parametrize("seed", range(6))
def test_mask_is_binary_and_has_one_component_per_point(seed):
    tile = generate_tile(seed, 96, mitosis_probability=1.0)
    image, mask, points = tile["image"], tile["mask"], tile["points"]
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert mask.shape == (96, 96) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    assert points.dtype == np.float32 and points.shape[1:] == (2,)
    assert len(points) >= 1

    labels, n = ndi.label(mask, structure=EIGHT)
    assert n == len(points)
    # An anaphase centroid can sit between the two plates, so test against
    # each figure's convex hull rather than its pixels.
    hulls = [convex_hull_image(labels == i) for i in range(1, n + 1)]
    for r, c in np.rint(points).astype(int):
        assert sum(hull[r, c] for hull in hulls) == 1


def test_figures_are_dark_and_darkness_alone_does_not_find_them():
    for seed in range(4):
        tile = generate_tile(seed, 128, mitosis_probability=1.0)
        mask = tile["mask"].astype(bool)
        h = rgb2hed(tile["image"])[..., 0]
        assert h[mask].mean() > 2 * h.mean()
        # Hard negatives (lymphocytes, pyknotic and hyperchromatic nuclei):
        # many pixels as dark as a typical figure are not in the mask.
        dark = h > np.percentile(h[mask], 25)
        assert (dark & ~mask).sum() > 0.2 * dark.sum()


@pytest.mark.parametrize("seed", range(4))
def test_mask_is_aligned_with_what_is_drawn(seed):
    drawn = generate_tile(seed, 128, mitosis_probability=1.0)
    blank = generate_tile(seed, 128, mitosis_probability=1.0, draw_mitoses=False)
    np.testing.assert_array_equal(drawn["mask"], blank["mask"])
    np.testing.assert_array_equal(drawn["points"], blank["points"])

    mask = drawn["mask"].astype(bool)
    diff = np.abs(drawn["image"].astype(int) - blank["image"].astype(int)).max(axis=-1)
    assert diff[mask].mean() > 40
    # Only the optical blur may carry a figure past its mask.
    near = ndi.binary_dilation(mask, EIGHT, iterations=4)
    assert diff[~near].max() <= 1


def test_tile_without_figures_is_unchanged_by_draw_flag():
    a = generate_tile(3, 64, mitosis_probability=0.0)
    b = generate_tile(3, 64, mitosis_probability=0.0, draw_mitoses=False)
    assert a["mask"].sum() == 0 and a["points"].shape == (0, 2)
    np.testing.assert_array_equal(a["image"], b["image"])


def test_some_tiles_have_mitoses_and_some_do_not():
    counts = [len(t["points"]) for t in generate_split("train", 40, size=64)]
    empty = sum(c == 0 for c in counts) / len(counts)
    assert 0.15 < empty < 0.75
    assert max(counts) >= 2


def test_load_arrays_shapes_and_dtypes():
    images, masks = load_arrays("validation", num_examples=3, size=64, seed=5)
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (3, 64, 64) and masks.dtype == np.uint8
    first = next(generate_split("validation", 1, 64, seed=5))
    np.testing.assert_array_equal(images[0], first["image"])


def test_default_sizes_cover_all_splits():
    assert set(DEFAULT_SIZES) == set(SPLITS)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="train, validation, test"):
        load_arrays("training", 2, 64)
    with pytest.raises(ValueError, match="train, validation, test"):
        generate_split("val")  # eagerly, before iteration
    with pytest.raises(ValueError, match=">= 1"):
        load_arrays("train", 0, 64)
    with pytest.raises(ValueError, match="size"):
        generate_tile(0, 16)
    with pytest.raises(ValueError, match="mitosis_probability"):
        generate_tile(0, 64, mitosis_probability=1.5)


def test_generator_imports_no_tensorflow():
    tree = ast.parse(open(synthetic.__file__, encoding="utf-8").read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"tensorflow", "keras", "tensorflow_datasets"}


def test_tfds_builder_matches_generator(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from mitoseg_tf.data import synthetic_tfds

    # A second definition of the builder class must not clash in the registry.
    synthetic_tfds = importlib.reload(synthetic_tfds)

    ds = synthetic_tfds.load_synthetic_tfds("validation", str(tmp_path), config="tiny")
    got = list(tfds.as_numpy(ds))
    want = list(generate_split("validation", 4, size=64, seed=0))
    assert len(got) == len(want) == 4
    for index, (g, w) in enumerate(zip(got, want)):
        assert g["index"] == index
        np.testing.assert_array_equal(g["image"], w["image"])
        np.testing.assert_array_equal(g["mask"], w["mask"])
        np.testing.assert_array_equal(g["points"], w["points"].reshape(-1, 2))

    builder = tfds.builder("synthetic_mitosis/tiny", data_dir=str(tmp_path))
    assert builder.info.splits["train"].num_examples == 8
    assert builder.info.features["image"].shape == (64, 64, 3)
