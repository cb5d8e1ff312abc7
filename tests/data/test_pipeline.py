"""The tf.data pipeline: determinism, aligned augmentation, oversampling, shapes, targets, errors."""

import numpy as np
import pytest
from scipy import ndimage

from mitoseg_tf.data.pipeline import from_arrays, make_pipeline
from mitoseg_tf.data.sources import SOURCES, load_source

GREY = 128


def grey_tiles(n, size):
    return np.full((n, size, size, 3), GREY, np.uint8), np.zeros((n, size, size), np.uint8)


def first_batches(ds, count):
    return [(np.asarray(x), np.asarray(y)) for x, y in ds.take(count)]


def has_mitosis(masks):
    """Per sample: does the (B, H, W, 1) mask contain a mitosis pixel."""
    return np.asarray(masks).reshape(len(masks), -1).max(axis=1) > 0


def mitosis_share(source, positive_fraction, crop_size, *, scale_range=(0.8, 1.25), samples=200, seed=3):
    batch = 20
    ds = make_pipeline(
        source,
        training=True,
        batch_size=batch,
        crop_size=crop_size,
        seed=seed,
        positive_fraction=positive_fraction,
        scale_range=scale_range,
        stain_jitter=0.0,
    )
    flags = np.concatenate([has_mitosis(y) for _, y in ds.take(samples // batch)])
    assert flags.size == samples
    return float(flags.mean())


def batches_with_dict_targets(ds):
    return [(np.asarray(x), {k: np.asarray(v) for k, v in y.items()}) for x, y in ds]


# ---------------------------------------------------------------- determinism


@pytest.fixture(scope="module")
def random_source_arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 48, 48, 3), dtype=np.uint8)
    masks = np.zeros((12, 48, 48), np.uint8)
    for i in range(0, 12, 3):  # a third of the tiles have a figure
        top, left = rng.integers(0, 40, 2)
        masks[i, top : top + 6, left : left + 6] = 1
    return images, masks


def test_same_seed_gives_identical_batches_and_other_seed_differs(random_source_arrays):
    def batches(seed):
        ds = make_pipeline(from_arrays(*random_source_arrays), training=True, batch_size=4, crop_size=32, seed=seed)
        return first_batches(ds, 3)

    first, second, other = batches(7), batches(7), batches(8)
    for (x1, y1), (x2, y2) in zip(first, second):
        assert x1.tobytes() == x2.tobytes()
        assert y1.tobytes() == y2.tobytes()
    assert any(x1.tobytes() != x3.tobytes() for (x1, _), (x3, _) in zip(first, other))


# ---------------------------------------------------------------- alignment


def test_augmentation_keeps_image_and_mask_aligned():
    # Pure red rectangles (asymmetric, off-centre) on grey exactly where the mask is 1.
    images, masks = grey_tiles(6, 64)
    for i in range(6):
        top, left = 5 + 7 * i, 3 + 4 * i
        masks[i, top : top + 9, left : left + 17] = 1  # wide, so a wrong rotation is visible
        masks[i, top + 9 : top + 15, left : left + 4] = 1  # and an L foot, so a wrong flip is too
    images[masks == 1] = (255, 0, 0)

    ds = make_pipeline(from_arrays(images, masks), training=True, batch_size=16, crop_size=32, seed=5, stain_jitter=0.0)
    agree = total = mitosis_pixels = agree_all = 0
    flipped_agree = flipped_total = 0
    for x, y in first_batches(ds, 4):
        for image, mask in zip(x, y[..., 0]):
            # Red blended with grey at weight a has R - G = 255 a: "red-ish" is a > 1/2.
            red = (image[..., 0] - image[..., 1]) > 127.5
            interior = ndimage.minimum_filter(mask, 3) == ndimage.maximum_filter(mask, 3)
            agree += np.sum((red == (mask == 1)) & interior)
            total += np.sum(interior)
            agree_all += np.sum(red == (mask == 1))
            mitosis_pixels += np.sum(mask)
            # The same measure must catch a mask that was flipped but whose image was not.
            wrong = mask[:, ::-1]
            wrong_interior = ndimage.minimum_filter(wrong, 3) == ndimage.maximum_filter(wrong, 3)
            if mask.any():
                flipped_agree += np.sum((red == (wrong == 1)) & wrong_interior & (red | (wrong == 1)))
                flipped_total += np.sum(wrong_interior & (red | (wrong == 1)))
    assert mitosis_pixels > 64 * 50, "the crops should contain many figure pixels"
    assert agree / total >= 0.97, agree / total  # away from edges: bilinear vs nearest cannot disagree
    assert agree_all / (64 * 32 * 32) >= 0.97  # edges included
    assert flipped_agree / flipped_total < 0.6  # sensitivity: misalignment is detected


# ---------------------------------------------------------------- oversampling


def test_oversampling_centres_half_the_crops_on_a_mitosis():
    # 10% of tiles hold a small figure in a corner: random 16 px crops of a 64 px tile rarely hit it.
    images, masks = grey_tiles(20, 64)
    masks[:2, 4:10, 4:10] = 1
    source = from_arrays(images, masks)
    assert 0.38 <= mitosis_share(source, 0.5, 16) <= 0.62
    assert mitosis_share(source, 1.0, 16) == 1.0
    assert mitosis_share(source, None, 16) <= 0.1
    assert mitosis_share(source, 0.0, 16) == 0.0


def test_without_oversampling_the_share_stays_at_the_base_rate():
    # A 48 px crop of a 64 px tile always contains the central 16 px figure, so crops follow tiles.
    images, masks = grey_tiles(20, 64)
    masks[:2, 24:40, 24:40] = 1
    source = from_arrays(images, masks)
    assert 0.03 <= mitosis_share(source, None, 48, scale_range=(1.0, 1.0)) <= 0.2
    assert 0.38 <= mitosis_share(source, 0.5, 48, scale_range=(1.0, 1.0)) <= 0.62


# ---------------------------------------------------------------- shapes and the evaluation pass


def test_training_batches_have_the_documented_shapes_and_ranges(random_source_arrays):
    ds = make_pipeline(from_arrays(*random_source_arrays), training=True, batch_size=5, crop_size=24, seed=1)
    for x, y in ds.take(3):
        assert x.shape == (5, 24, 24, 3) and x.dtype.name == "float32"
        assert y.shape == (5, 24, 24, 1) and y.dtype.name == "int32"
        x, y = np.asarray(x), np.asarray(y)
        assert x.min() >= 0.0 and x.max() <= 255.0
        assert set(np.unique(y)) <= {0, 1}


def test_evaluation_pass_is_ordered_unaugmented_and_complete():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    masks = (rng.random((7, 16, 16)) < 0.2).astype(np.uint8)
    batches = first_batches(make_pipeline(from_arrays(images, masks), training=False, batch_size=3), 100)
    assert [len(x) for x, _ in batches] == [3, 3, 1]
    xs = np.concatenate([x for x, _ in batches])
    ys = np.concatenate([y for _, y in batches])
    assert xs.dtype == np.float32 and ys.dtype == np.int32
    np.testing.assert_array_equal(xs, images.astype(np.float32))
    np.testing.assert_array_equal(ys, masks[..., None])


def test_multi_output_targets_repeat_the_mask_and_classify_the_tile():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    masks = np.zeros((5, 16, 16), np.uint8)
    masks[1, 3, 4] = 1  # a single pixel counts
    masks[3, 8:12, 0:5] = 1
    roles = {"mask": "segmentation", "mask_x": "segmentation", "cls": "classification"}
    ds = make_pipeline(from_arrays(images, masks), training=False, batch_size=5, roles=roles)
    [(_, targets)] = batches_with_dict_targets(ds)
    assert set(targets) == set(roles)
    np.testing.assert_array_equal(targets["mask"], masks[..., None])
    np.testing.assert_array_equal(targets["mask_x"], masks[..., None])
    assert targets["cls"].dtype == np.float32
    # (B, 1): the shape of a per-tile classification output
    np.testing.assert_array_equal(targets["cls"], [[0.0], [1.0], [0.0], [1.0], [0.0]])

    train = make_pipeline(from_arrays(images, masks), training=True, batch_size=4, crop_size=16, roles=roles, seed=0)
    for _, t in train.take(3):
        t = {k: np.asarray(v) for k, v in t.items()}
        np.testing.assert_array_equal(t["mask"], t["mask_x"])
        np.testing.assert_array_equal(t["cls"][:, 0], has_mitosis(t["mask"]).astype(np.float32))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "images_shape, masks_shape, mask_value, match",
    [
        ((2, 8, 8, 3), (2, 8, 9), 0, "masks must have shape"),
        ((2, 8, 8, 3), (2, 8, 8), 2, "binary"),
        ((0, 8, 8, 3), (0, 8, 8), 0, "empty"),
        ((2, 8, 8, 4), (2, 8, 8), 0, r"images must have shape \(N, H, W, 3\)"),
        ((2, 8, 8), (2, 8, 8), 0, r"images must have shape \(N, H, W, 3\)"),
    ],
)
def test_from_arrays_rejects_bad_arrays(images_shape, masks_shape, mask_value, match):
    masks = np.zeros(masks_shape, np.uint8)
    if masks.size:
        masks.flat[0] = mask_value
    with pytest.raises(ValueError, match=match):
        from_arrays(np.zeros(images_shape, np.uint8), masks)


def test_from_arrays_accepts_a_trailing_mask_channel():
    masks = np.zeros((2, 8, 8, 1), np.uint8)
    masks[1, 2, 2, 0] = 1
    example = list(from_arrays(np.zeros((2, 8, 8, 3), np.uint8), masks).as_numpy_iterator())[1]
    assert example["mask"].shape == (8, 8) and example["mask"][2, 2] == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=2.0), "batch_size"),
        (dict(batch_size=2, positive_fraction=1.5), "positive_fraction"),
        (dict(batch_size=2, positive_fraction=-0.1), "positive_fraction"),
    ],
)
def test_make_pipeline_rejects_bad_options(kwargs, match):
    source = from_arrays(*grey_tiles(2, 8))
    with pytest.raises(ValueError, match=match):
        make_pipeline(source, training=True, **kwargs)


@pytest.mark.parametrize("training", [True, False])
def test_make_pipeline_rejects_an_empty_dataset(training):
    source = from_arrays(*grey_tiles(2, 8)).take(0)
    with pytest.raises(ValueError, match="empty"):
        make_pipeline(source, training=training, batch_size=1)


def test_load_source_rejects_unknown_names_listing_the_valid_ones():
    with pytest.raises(ValueError, match="nope") as info:
        load_source("nope")
    for name in SOURCES:
        assert name in str(info.value)


def test_load_source_synthetic_gives_image_mask_examples():
    source = load_source("synthetic", "validation", num_examples=2, size=32)
    examples = list(source.as_numpy_iterator())
    assert len(examples) == 2
    assert examples[0]["image"].shape == (32, 32, 3) and examples[0]["image"].dtype == np.uint8
    assert examples[0]["mask"].shape == (32, 32) and set(np.unique(examples[0]["mask"])) <= {0, 1}
