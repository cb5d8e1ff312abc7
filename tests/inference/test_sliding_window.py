"""Sliding-window prediction against whole-image forward passes and hand-checked geometry."""

import keras
import numpy as np
import pytest

from mitoseg_tf.inference import plan_tiles, predict_image, stitch
from mitoseg_tf.inference import tta as tta_lib
from mitoseg_tf.inference.tiling import reflect_indices, tile_starts


def small_receptive_field_model(seed=0):
    """Two 3x3 convs and a 1x1 sigmoid head: receptive radius 2 px, any input size, stride 1."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="rf5")


def whole_image(model, image):
    return np.asarray(model.predict_on_batch(image[None].astype(np.float32)))[0, ..., 0]


@pytest.fixture(scope="module")
def rf_model():
    return small_receptive_field_model()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (70, 91, 3), dtype=np.uint8)


def test_reflect_indices_match_numpy_and_fold_past_the_image():
    assert reflect_indices(np.arange(-3, 8), 5).tolist() == np.pad(np.arange(5), 3, mode="reflect").tolist()
    # a pad longer than the image keeps mirroring: 0 1 2 1 0 1 2 1 0
    assert reflect_indices(np.arange(9), 3).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0]
    assert reflect_indices(np.arange(4), 1).tolist() == [0, 0, 0, 0]


def test_tile_starts_cover_the_length_with_the_last_tile_flush():
    assert tile_starts(100, 100, 0.5).tolist() == [0]
    assert tile_starts(100, 40, 0.5).tolist() == [0, 20, 40, 60]
    starts = tile_starts(2148, 512, 0.25)
    assert starts[0] == 0 and starts[-1] == 2148 - 512
    assert 512 - np.diff(starts).max() >= 128  # at least the asked overlap


def test_stitched_equals_whole_image_pass_away_from_borders(rf_model, image):
    reference = whole_image(rf_model, image)
    for overlap, batch_size in ((0.5, 3), (0.25, 16)):
        stitched = predict_image(rf_model, image, tile=32, overlap=overlap, batch_size=batch_size, trim=2)
        assert stitched.shape == image.shape[:2] and stitched.dtype == np.float32
        # The receptive radius is 2 px: only the 2 px next to the image border see padding.
        np.testing.assert_allclose(stitched[2:-2, 2:-2], reference[2:-2, 2:-2], rtol=1e-5, atol=1e-6)


def test_without_trim_gaussian_blending_stays_close(rf_model, image):
    stitched = predict_image(rf_model, image, tile=32, overlap=0.5, batch_size=8, trim=0)
    reference = whole_image(rf_model, image)
    # Tile-edge pixels (wrong: zero padding) weigh ~exp(-8) of a tile centre.
    np.testing.assert_allclose(stitched[2:-2, 2:-2], reference[2:-2, 2:-2], atol=2e-3)


def test_tiles_are_batched_as_asked(rf_model, image):
    calls = []

    def predict(tiles):
        calls.append(tiles.shape)
        return np.zeros(tiles.shape[:3], np.float32)

    plan = plan_tiles(image.shape, 32, 0.5, margin=4)
    stitch(image, predict, plan, batch_size=4)
    assert sum(s[0] for s in calls) == plan.num_tiles
    assert max(s[0] for s in calls) == 4 and all(s[1:] == (32, 32, 3) for s in calls)


@pytest.mark.parametrize("shape", [(20, 13), (1, 1), (47, 200), (64, 64)])
def test_any_size_works_with_a_strided_zoo_model(shape):
    from mitoseg_tf.zoo import build, get_card

    tiny = dict(get_card("unet").tiny, input_shape=(None, None, 3))
    model = build("unet", **tiny)
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    probability = predict_image(model, image, tile=32, overlap=0.25, batch_size=2)
    assert probability.shape == shape
    assert np.isfinite(probability).all() and (probability >= 0).all() and (probability <= 1).all()


def test_smaller_than_tile_uses_a_reflect_padded_single_tile(rf_model):
    image = np.random.default_rng(3).integers(0, 256, (10, 7, 3), dtype=np.uint8)
    plan = plan_tiles(image.shape, 64, 0.25, margin=5)
    assert plan.num_tiles == 1 and plan.tile_shape == (20, 17)
    padded = np.pad(image, ((5, 5), (5, 5), (0, 0)), mode="reflect")
    expected = whole_image(rf_model, padded)[5:15, 5:12]
    np.testing.assert_allclose(predict_image(rf_model, image, tile=64, margin=5), expected, rtol=1e-5, atol=1e-6)


def test_tta_averages_the_eight_transformed_predictions(rf_model, image):
    crop = image[:40, :40]
    stitched = predict_image(rf_model, crop, tile=64, margin=0, tta=True)
    batch = crop[None].astype(np.float32)
    manual = np.mean(
        [
            tta_lib.inverse(
                np.asarray(rf_model.predict_on_batch(np.ascontiguousarray(tta_lib.forward(batch, k))))[..., 0], k
            )[0]
            for k in range(8)
        ],
        axis=0,
    )
    np.testing.assert_allclose(stitched, manual, rtol=1e-5, atol=1e-6)
    # the 8 transforms are distinct and each inverse undoes its forward
    probe = np.arange(12).reshape(1, 3, 4)
    outs = {tta_lib.forward(probe, k).tobytes() + bytes(tta_lib.forward(probe, k).shape) for k in range(8)}
    assert len(outs) == 8
    for k in range(8):
        assert np.array_equal(tta_lib.inverse(tta_lib.forward(probe, k), k), probe)


def test_bad_inputs_fail_clearly(rf_model):
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        predict_image(rf_model, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="overlap"):
        predict_image(rf_model, np.zeros((8, 8, 3), np.uint8), overlap=1.0)
    with pytest.raises(ValueError, match="multiple of the network stride 16"):
        plan_tiles((100, 100), 40, stride=16)
    with pytest.raises(ValueError, match="trim"):
        plan_tiles((100, 100), 32, 0.1, trim=8)
