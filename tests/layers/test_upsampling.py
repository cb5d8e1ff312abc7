"""BilinearUpSampling2D: the resize's numbers, on inputs whose size is unknown when traced."""

import keras
import numpy as np
import pytest

from mitoseg_tf.layers import BilinearUpSampling2D


def _reference(x, size):
    """Keras's own bilinear UpSampling2D on a concrete input (where its size check passes)."""
    return np.asarray(keras.layers.UpSampling2D(size, interpolation="bilinear")(x))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 16, (2, 4)])
def test_matches_the_bilinear_resize(size):
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    got = np.asarray(BilinearUpSampling2D(size)(x))
    want = _reference(x, size)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_hand_computed_factor_two():
    # Half-pixel centres: output 2i sits at i - 1/4, output 2i + 1 at i + 1/4; edges repeat.
    x = np.array([0.0, 4.0, 8.0], "float32").reshape(1, 3, 1, 1)
    got = np.asarray(BilinearUpSampling2D((2, 1))(x)).ravel()
    np.testing.assert_allclose(got, [0.0, 1.0, 3.0, 5.0, 7.0, 8.0])


def test_traces_once_for_any_input_size():
    """The Keras layer's size check fails here (keras-team/keras#22079); this layer does not."""
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow graph with unknown sizes")
    layer = BilinearUpSampling2D(4)
    traced = tf.function(layer.call, input_signature=[tf.TensorSpec([None, None, None, 2])])
    rng = np.random.default_rng(1)
    for height, width in [(3, 5), (6, 2)]:
        x = rng.normal(size=(1, height, width, 2)).astype("float32")
        np.testing.assert_allclose(traced(x).numpy(), _reference(x, 4), atol=1e-5)


def test_unet_3plus_predicts_images_of_several_sizes_in_one_process():
    """The bug this layer fixes: after two tile sizes, predict_on_batch retraced with unknown sizes."""
    from mitoseg_tf.inference import predict_image
    from mitoseg_tf.zoo import build, get_card

    model = build("unet_3plus", **{**get_card("unet_3plus").tiny, "input_shape": (None, None, 3)})
    rng = np.random.default_rng(2)
    for side in (64, 40, 20):
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        probability = predict_image(model, image, tile=64)
        assert probability.shape == (side, side)
        assert np.isfinite(probability).all()


def test_bfloat16_and_config_round_trip():
    layer = BilinearUpSampling2D((2, 3), dtype="mixed_bfloat16", name="up")
    x = np.random.default_rng(3).normal(size=(1, 4, 4, 2)).astype("float32")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(keras.ops.cast(out, "float32")), _reference(x, (2, 3)), atol=0.05)
    clone = BilinearUpSampling2D.from_config(layer.get_config())
    assert clone.size == (2, 3) and clone.name == "up"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, BilinearUpSampling2D) and restored.size == (2, 3)


@pytest.mark.parametrize("bad", [0, -2, 1.5, (2,), (2, 0)])
def test_bad_size_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="size must be a positive integer or a pair of them"):
        BilinearUpSampling2D(bad)
