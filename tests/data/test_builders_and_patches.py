"""TFDS builders end to end, slide-grouped splits, the patch stream and the evaluation tile grid."""

import os

import numpy as np
import pytest
import tensorflow as tf
from format_fixtures import folder_layout, tissue
from PIL import Image

from mitoseg_tf.data.builders import load_dataset, prepare
from mitoseg_tf.data.patches import make_patch_pipeline, patch_stream, tile_grid
from mitoseg_tf.data.splits import SPLITS, slide_splits


def test_slides_never_share_a_split_and_splits_are_deterministic():
    slides = [f"s{i // 3}" for i in range(30)]  # 10 slides, 3 images each
    first = slide_splits(slides)
    assert first == slide_splits(slides)
    counts = {s: list(first.values()).count(s) for s in SPLITS}
    assert counts == {"train": 7, "validation": 2, "test": 1} or counts == {"train": 7, "validation": 1, "test": 2}
    assert first != slide_splits(slides, seed=1)
    assert set(slide_splits(["a", "b", "c"]).values()) == set(SPLITS)
    with pytest.raises(ValueError, match="summing to 1"):
        slide_splits(slides, fractions=(0.5, 0.2, 0.2))


def test_folder_builder_round_trip(tmp_path):
    masks = folder_layout(tmp_path / "raw", count=6)
    options = dict(prepared_dir=str(tmp_path / "prepared"))
    builder = prepare("folder", str(tmp_path / "raw"), **options)
    assert os.path.isdir(builder.data_dir)
    seen = {}
    for split in [s for s in SPLITS if s in builder.info.splits]:
        for ex in load_dataset("folder", split, str(tmp_path / "raw"), **options).as_numpy_iterator():
            name = ex["id"].decode()
            assert name not in seen  # no image in two splits
            seen[name] = split
            image = np.asarray(Image.open(tmp_path / "raw" / "images" / f"{name}.png"))
            np.testing.assert_array_equal(ex["image"], image)
            np.testing.assert_array_equal(ex["mask"][..., 0], masks[name])
            assert ex["points"].shape == (1, 2) and ex["mpp"] == pytest.approx(0.25)
    assert sorted(seen) == sorted(masks)
    assert sorted(set(seen.values())) == sorted(SPLITS)  # six one-image slides reach all three splits
    with pytest.raises(ValueError, match=r"has no 'nope' split here"):
        load_dataset("folder", "nope", str(tmp_path / "raw"), **options)


def _encoded(examples):
    """A dataset shaped like ``load_dataset(..., decode=False)``: PNG bytes plus points."""
    rows = [
        {
            "image": tf.io.encode_png(image).numpy(),
            "mask": tf.io.encode_png(mask[..., None]).numpy(),
            "points": np.asarray(points, np.float32).reshape(-1, 2),
            "negatives": np.asarray(negatives, np.float32).reshape(-1, 2),
            "mpp": np.float32(0.25),
        }
        for image, mask, points, negatives in examples
    ]
    spec = {
        "image": tf.TensorSpec((), tf.string),
        "mask": tf.TensorSpec((), tf.string),
        "points": tf.TensorSpec((None, 2), tf.float32),
        "negatives": tf.TensorSpec((None, 2), tf.float32),
        "mpp": tf.TensorSpec((), tf.float32),
    }
    return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec)


def _large_image_with_figures():
    mask = np.zeros((600, 700), np.uint8)
    figures = [(100, 120), (450, 500)]
    for r, c in figures:
        mask[r - 5 : r + 5, c - 5 : c + 5] = 1
    return tissue(600, 700), mask, figures, [(300, 80)]


def test_patch_stream_shares_and_positions():
    image, mask, figures, negatives = _large_image_with_figures()
    records = _encoded([(image, mask, figures, negatives)])
    stream = patch_stream(
        records,
        patch_size=64,
        patches_per_image=8,
        positive_fraction=0.5,
        hard_negative_fraction=0.25,
        jitter=0.1,
        seed=3,
    )
    patches = list(stream.take(400).as_numpy_iterator())
    assert all(p["image"].shape == (80, 80, 3) and p["mask"].shape == (80, 80) for p in patches)
    centred = [p for p in patches if p["centre"]]
    assert 0.42 < len(centred) / len(patches) < 0.58
    # a mitosis-centred patch has the figure within jitter of its middle
    for p in centred:
        rows, cols = np.nonzero(p["mask"])
        assert len(rows) and abs(rows.mean() - 40) <= 0.1 * 80 + 6 and abs(cols.mean() - 40) <= 0.1 * 80 + 6
    same = list(
        patch_stream(
            records,
            patch_size=64,
            patches_per_image=8,
            positive_fraction=0.5,
            hard_negative_fraction=0.25,
            jitter=0.1,
            seed=3,
        )
        .take(20)
        .as_numpy_iterator()
    )
    np.testing.assert_array_equal(np.stack([p["image"] for p in same]), np.stack([p["image"] for p in patches[:20]]))


def test_hard_negative_patches_are_centred_on_the_negatives():
    image, mask, figures, negatives = _large_image_with_figures()
    image[295:306, 75:86] = (0, 0, 255)  # mark the hard negative at (300, 80) in blue
    stream = patch_stream(
        _encoded([(image, mask, figures, negatives)]),
        patch_size=64,
        positive_fraction=0.0,
        hard_negative_fraction=1.0,
        jitter=0.0,
    )
    for p in stream.take(10).as_numpy_iterator():
        blue = np.argwhere((p["image"] == (0, 0, 255)).all(-1))
        np.testing.assert_allclose(blue.mean(0), [40, 40], atol=1.0)
        assert not p["centre"] and p["mask"].sum() == 0


def test_small_images_are_padded_to_a_patch():
    image, mask = tissue(40, 50), np.zeros((40, 50), np.uint8)
    mask[18:22, 23:27] = 1
    ds = make_patch_pipeline(_encoded([(image, mask, [(20, 25)], [])]), batch_size=4, patch_size=64, stain_jitter=0.0)
    x, y = next(iter(ds))
    assert x.shape == (4, 64, 64, 3) and y.shape == (4, 64, 64, 1) and y.dtype == tf.int32
    assert int(tf.reduce_max(y)) == 1


def test_patch_stream_rejects_bad_fractions():
    with pytest.raises(ValueError, match="at most 1"):
        patch_stream(_encoded([_large_image_with_figures()]), positive_fraction=0.8, hard_negative_fraction=0.3)


def test_tile_grid_covers_every_pixel_once_or_more():
    height, width = 150, 230
    coords = np.arange(height * width, dtype=np.int64).reshape(height, width)
    image = np.stack([coords % 256, (coords // 256) % 256, coords // 65536], -1).astype(np.uint8)
    ds = tf.data.Dataset.from_tensors({"image": image, "mask": np.zeros((height, width), np.uint8)})
    tiles = list(tile_grid(ds, tile=64).as_numpy_iterator())
    assert all(t["image"].shape == (64, 64, 3) for t in tiles)
    seen = np.zeros(height * width, bool)
    for t in tiles:
        c = t["image"].astype(np.int64)
        seen[(c[..., 0] + 256 * c[..., 1] + 65536 * c[..., 2]).ravel()] = True
    assert seen.all() and len(tiles) == 3 * 4


def test_tile_pipeline_declares_its_length():
    from mitoseg_tf.data.patches import make_tile_pipeline, tile_layout

    examples = [
        (tissue(150, 230), np.zeros((150, 230), np.uint8), [], []),
        (tissue(40, 70, 1), np.zeros((40, 70), np.uint8), [], []),
    ]
    ds = make_tile_pipeline(_encoded(examples), batch_size=4, tile=64, decoded=False)
    batches = list(ds.as_numpy_iterator())
    assert tile_layout(150, 230, 64) == (64, 12) and tile_layout(40, 70, 64) == (32, 6)
    # 12 tiles of 64 px -> 3 batches; 6 tiles of 32 px -> 2 batches
    assert len(batches) == int(ds.cardinality()) == 5
    assert sorted(len(x) for x, _ in batches) == [2, 4, 4, 4, 4]


def _coordinate_image(height, width):
    """Each pixel's RGB encodes its (row, col), so a patch tells where it was cut from."""
    rows, cols = np.mgrid[:height, :width]
    return np.stack([rows % 256, cols % 256, (rows // 256) * 16 + cols // 256], -1).astype(np.uint8)


def _origin(patch):
    r, g, b = (int(v) for v in patch["image"][0, 0])
    return (b // 16) * 256 + r, (b % 16) * 256 + g


def test_background_only_patches_avoid_points_by_the_exclusion_distance():
    height, width = 400, 500
    mask = np.zeros((height, width), np.uint8)
    points = [(100.0, 100.0), (300.0, 380.0)]
    for r, c in points:
        mask[int(r) - 4 : int(r) + 5, int(c) - 4 : int(c) + 5] = 1
    records = _encoded([(_coordinate_image(height, width), mask, points, [(50.0, 60.0)])])
    # 10 um at 0.25 um/px = 40 px between every point and every patch pixel
    stream = patch_stream(records, patch_size=64, background_only=True, exclude_um=10.0, positive_fraction=0.9, seed=1)
    patches = list(stream.take(300).as_numpy_iterator())
    side = 80
    for p in patches:
        top, left = _origin(p)
        assert p["mask"].sum() == 0 and not p["centre"]  # the figures' pixels are not labelled here
        for r, c in points:
            dr = max(top - r, 0.0, r - (top + side - 1))
            dc = max(left - c, 0.0, c - (left + side - 1))
            assert np.hypot(dr, dc) >= 40.0, (top, left, r, c)
    # without the exclusion the same stream does cut patches that reach the points
    near = 0
    for p in patch_stream(records, patch_size=64, background_only=True, seed=1).take(300).as_numpy_iterator():
        top, left = _origin(p)
        near += any(top - 40 < r < top + side + 40 and left - 40 < c < left + side + 40 for r, c in points)
    assert near > 10


def test_small_labelled_images_mirror_their_mask_into_the_padding():
    image, mask = tissue(40, 50), np.zeros((40, 50), np.uint8)
    image[0:4, 20:24] = (0, 0, 255)  # a figure touching the top edge, marked blue
    mask[0:4, 20:24] = 1
    (patch,) = list(
        patch_stream(
            _encoded([(image, mask, [(2, 22)], [])]), patch_size=64, positive_fraction=1.0, hard_negative_fraction=0.0
        )
        .take(1)
        .as_numpy_iterator()
    )
    blue = (patch["image"] == (0, 0, 255)).all(-1)
    assert blue.sum() == 2 * 16  # the figure and its reflection into the top padding
    np.testing.assert_array_equal(patch["mask"].astype(bool), blue)


def test_exclusion_needs_a_positive_distance():
    with pytest.raises(ValueError, match="exclude_um must be a positive number"):
        patch_stream(_encoded([_large_image_with_figures()]), exclude_um=-1)
