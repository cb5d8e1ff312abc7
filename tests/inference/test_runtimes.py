"""The optional runtimes give the TensorFlow path's maps and figures, and a missing one is named, not guessed."""

import importlib.util

import keras
import numpy as np
import pytest

from mitoseg_tf.detector import DetectionSettings, Detector
from mitoseg_tf.inference import predict_image
from mitoseg_tf.inference import runtimes as runtimes_lib
from mitoseg_tf.inference.runtimes import batch_predictor, check_runtime, missing
from mitoseg_tf.layers import BatchNorm, BilinearUpSampling2D

# The optional packages are in the test extras, so CI runs these; a bare install skips them and says why.
needs_onnx = pytest.mark.skipif(
    missing("onnxruntime") is not None, reason=str(missing("onnxruntime")) + " (pip install -e '.[test]')"
)
OPTIONAL = [
    "xla",
    pytest.param("onnxruntime", marks=needs_onnx),
]


def tiny_unet(seed=0):
    """Down, up and a skip with the zoo's BatchNorm and upsampling and a two-class softmax: the shipped U-Net's ops."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    skip = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(skip)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = BatchNorm(beta_initializer="random_normal", moving_mean_initializer="random_normal")(x)
    x = keras.layers.Activation("relu")(x)
    x = BilinearUpSampling2D(2)(x)
    x = keras.layers.Concatenate()([x, skip])
    outputs = keras.layers.Conv2D(2, 1, activation="softmax", name="mask")(x)
    return keras.Model(inputs, outputs, name="tiny_unet")


@pytest.fixture(scope="module")
def model():
    return tiny_unet()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    picture = rng.integers(150, 230, (150, 170, 3), dtype=np.uint8)
    picture[40:60, 50:75] = (60, 25, 95)  # a dark blob: some pixels of the map well above the rest
    return picture


def _map(model, image, predict_batch=None):
    return predict_image(model, image, tile=64, overlap=0.25, batch_size=3, predict_batch=predict_batch)


@pytest.mark.parametrize("runtime", OPTIONAL)
def test_runtime_maps_match_tensorflow(model, image, runtime):
    reference = _map(model, image)
    other = _map(model, image, batch_predictor(model, runtime))
    assert other.shape == reference.shape and other.dtype == np.float32
    # Float32 throughout: only the order of the sums differs.
    np.testing.assert_allclose(other, reference, atol=1e-5)


@pytest.mark.parametrize("runtime", OPTIONAL)
def test_detector_on_a_runtime_finds_the_tensorflow_figures(model, image, runtime):
    reference = _map(model, image)
    # A threshold at the map's 98th percentile: a few figures, none decided by the last float32 digit.
    threshold = float(np.quantile(reference, 0.98))
    settings = DetectionSettings(pixel_threshold=threshold, min_area_um2=0.0)
    tensorflow = Detector(model, mpp=0.25, settings=settings, tile=64)
    other = Detector(model, mpp=0.25, settings=settings, tile=64, runtime=runtime)
    expected = tensorflow.figures_native(image)
    found = other.figures_native(image)
    assert expected, "the test image gives no figures to compare"
    assert [f.centroid for f in found] == pytest.approx([f.centroid for f in expected], abs=1e-6)
    assert [f.area_px for f in found] == [f.area_px for f in expected]
    assert [f.score for f in found] == pytest.approx([f.score for f in expected], abs=1e-5)
    # New settings keep the converted network rather than converting it again.
    assert other.with_settings(min_area_um2=1.0)._predict_batch is other._predict_batch
    assert other.with_settings(runtime="tensorflow").runtime == "tensorflow"


def test_tensorflow_is_the_default_and_its_predictor_is_keras_own(model, image):
    detector = Detector(model, mpp=0.25, tile=64)
    assert detector.runtime == runtimes_lib.DEFAULT_RUNTIME == "tensorflow"
    np.testing.assert_array_equal(detector.probability_native(image), predict_image(model, image, tile=64))


def test_an_unknown_runtime_is_refused_with_the_choices(model):
    with pytest.raises(ValueError, match="one of tensorflow, xla, onnxruntime; got 'tensorrt'"):
        Detector(model, mpp=0.25, runtime="tensorrt")


def test_a_missing_runtime_package_names_its_extra(monkeypatch, model):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs onnxruntime.*pip install 'mitoseg-tf\[onnx\]'"):
        check_runtime("onnxruntime")
    # At construction, before any slide is read.
    with pytest.raises(ValueError, match="mitoseg-tf"):
        Detector(model, mpp=0.25, runtime="onnxruntime")
