"""The zoo's GroupNorm against a NumPy group normalisation and keras.layers.GroupNormalization.

GroupNorm computes its statistics, normalisation and gradient differently from
the stock layer (for speed), so outputs are checked against NumPy and
gradients against the stock layer's autodiff, in float32 and mixed bfloat16,
plus the config, a ``.keras`` round trip, the stock fallbacks and JAX.
"""

import os
import subprocess
import sys

import jax_without_tensorflow
import keras
import numpy as np
import pytest
import tensorflow as tf

from mitoseg_tf.layers.norm import GroupNorm

SHAPE = (3, 7, 5, 12)


def numpy_group_norm(x, groups, gamma, beta, epsilon=1e-5):
    b, h, w, c = x.shape
    grouped = x.astype("float64").reshape(b, h, w, groups, c // groups)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    return ((grouped - mean) / np.sqrt(var + epsilon)).reshape(x.shape) * gamma + beta


def make_pair(rng, shape=SHAPE, **kwargs):
    layer = GroupNorm(**kwargs)
    layer.build(shape)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    twin = keras.layers.GroupNormalization(**{k: v for k, v in layer.get_config().items() if k != "name"})
    twin.build(shape)
    twin.set_weights(layer.get_weights())
    return layer, twin


def activations(rng, shape=SHAPE):
    # An offset mean and a non-unit spread, as conv outputs have.
    return (rng.normal(size=shape) * 2.5 + 3.0).astype("float32")


def forward_and_grads(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x] + [v.value for v in layer.trainable_weights])
    return [np.asarray(tf.cast(t, "float32")) for t in [y] + grads]


def assert_close(actual, expected, rtol, what):
    scale = max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(actual, expected, atol=rtol * scale, rtol=0, err_msg=what)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"groups": 4},
        {"groups": 12},
        {"groups": 1},
        {"groups": 3, "center": False},
        {"groups": 6, "scale": False, "epsilon": 1e-3},
    ],
    ids=["4_groups", "instance_norm", "layer_norm", "no_center", "no_scale_eps"],
)
def test_float32_matches_numpy_and_keras_gradients(kwargs):
    rng = np.random.default_rng(0)
    layer, twin = make_pair(rng, **kwargs)
    x = activations(rng)
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    expected = numpy_group_norm(x, layer.groups, gamma, beta, layer.epsilon)
    upstream = rng.normal(size=SHAPE).astype("float32")
    ours, ref = forward_and_grads(layer, x, upstream), forward_and_grads(twin, x, upstream)
    assert_close(ours[0], expected, 1e-5, "output vs numpy")
    for a, b, name in zip(ours, ref, ["output", "d/dx", "d/dgamma", "d/dbeta"]):
        assert_close(a, b, 1e-5, name)
    assert len(ours) == 2 + layer.scale + layer.center


def test_each_image_is_normalised_alone():
    rng = np.random.default_rng(1)
    layer, _ = make_pair(rng, groups=4)
    x = activations(rng)
    x[1] = x[1] * 10 - 40  # another scanner, another scale: must not touch images 0 and 2
    both = np.asarray(layer(x))
    for i in range(SHAPE[0]):
        np.testing.assert_allclose(both[i], np.asarray(layer(x[i : i + 1]))[0], atol=1e-5)


def test_mixed_bfloat16_dtypes_and_values():
    rng = np.random.default_rng(2)
    shape = (4, 16, 16, 16)
    layer, twin = make_pair(rng, shape=shape, groups=8, dtype="mixed_bfloat16")
    assert layer.compute_dtype == "bfloat16" and all(w.dtype == "float32" for w in layer.weights)
    x = activations(rng, shape)
    upstream = rng.normal(size=shape).astype("float32")
    assert keras.backend.standardize_dtype(layer(x).dtype) == "bfloat16"
    ours, ref = forward_and_grads(layer, x, upstream), forward_and_grads(twin, x, upstream)
    # The stock layer computes in float32 from the bfloat16 input, so the two may
    # differ by bfloat16 rounding of the output and of dy * x terms, not more.
    for a, b, name in zip(ours, ref, ["output", "d/dx", "d/dgamma", "d/dbeta"]):
        assert_close(a, b, 2**-6, name)


def test_config_round_trip_and_keras_file(tmp_path):
    layer = GroupNorm(groups=2, epsilon=1e-5, center=False, name="gn")
    config = layer.get_config()
    assert GroupNorm.from_config(config).get_config() == config
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    model = keras.Model(inputs, GroupNorm(groups=2, name="gn")(x))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(4)
    images = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    model.train_on_batch(images, rng.normal(size=(2, 8, 8, 4)).astype("float32"))
    model.save(tmp_path / "tiny.keras")
    loaded = keras.saving.load_model(tmp_path / "tiny.keras")
    assert type(loaded.get_layer("gn")) is GroupNorm
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-6)


@pytest.mark.parametrize("shape, axis", [((2, 9, 6), -1), ((2, 6, 5, 4), 1)], ids=["rank3", "channels_first"])
def test_other_inputs_use_the_stock_code(shape, axis):
    rng = np.random.default_rng(5)
    layer, twin = make_pair(rng, shape=shape, groups=3, axis=axis)
    x = activations(rng, shape)
    np.testing.assert_allclose(layer(x), twin(x), atol=1e-5)


_JAX = """
import numpy as np, keras, jax
from mitoseg_tf.layers.norm import GroupNorm
rng = np.random.default_rng(0)
x = (rng.normal(size=(2, 6, 5, 8)) * 2.5 + 3.0).astype("float32")
w = rng.normal(size=x.shape).astype("float32")
layer = GroupNorm(groups=2); layer.build(x.shape)
gamma = rng.normal(size=8).astype("float32"); layer.gamma.assign(gamma)
g5 = x.reshape(2, 6, 5, 2, 4)
mean, var = g5.mean((1, 2, 4), keepdims=True), g5.var((1, 2, 4), keepdims=True)
xhat = ((g5 - mean) / np.sqrt(var + 1e-5)).reshape(x.shape)
# XLA's CPU rsqrt is accurate to about 1e-4 relative, not to float32 rounding.
np.testing.assert_allclose(np.asarray(layer(x)), xhat * gamma, atol=1e-3)
# d/dx of sum(y * w), closed form per image and group.
g = (w * gamma).reshape(g5.shape)
xh = xhat.reshape(g5.shape)
dx_ref = ((g - g.mean((1, 2, 4), keepdims=True) - xh * (g * xh).mean((1, 2, 4), keepdims=True)) / np.sqrt(var + 1e-5))
dx = jax.grad(lambda v: (layer(v) * w).sum())(x)
np.testing.assert_allclose(np.asarray(dx), dx_ref.reshape(x.shape), atol=1e-3)
print("OK", keras.backend.backend())
"""


def test_runs_on_jax():
    jax_without_tensorflow.need("jax")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=repo)
    proc = subprocess.run([sys.executable, "-c", _JAX], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
