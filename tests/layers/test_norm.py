"""The zoo's BatchNorm against keras.layers.BatchNormalization, which it must reproduce.

BatchNorm computes its statistics, normalisation and gradient differently from
the stock layer (for speed), so every observable is compared: outputs in
training and inference, the moving statistics after several updates, the
gradients w.r.t. input, gamma and beta, the dtypes under mixed_bfloat16, the
config and a ``.keras`` round trip.
"""

import os
import subprocess
import sys

import jax_without_tensorflow
import keras
import numpy as np
import pytest
import tensorflow as tf

from mitoseg_tf.layers.norm import BatchNorm

SHAPE = (4, 6, 5, 8)


def make_pair(rng, shape=SHAPE, **kwargs):
    layer = BatchNorm(**kwargs)
    layer.build(shape)
    channels = shape[layer.axis]
    weights = []
    for w in layer.weights:
        if w.name == "moving_variance":
            weights.append(rng.uniform(0.5, 2.0, size=(channels,)))
        else:
            weights.append(rng.normal(size=(channels,)))
    layer.set_weights([w.astype("float32") for w in weights])
    twin = keras.layers.BatchNormalization(**{k: v for k, v in layer.get_config().items() if k != "name"})
    twin.build(shape)
    twin.set_weights(layer.get_weights())
    return layer, twin


def batches(rng, n, shape=SHAPE):
    # An offset mean and a non-unit spread, as conv outputs have: a naive one-pass
    # variance would lose digits here.
    return [(rng.normal(size=shape) * 2.5 + 4.0).astype("float32") for _ in range(n)]


def forward_and_grads(layer, x, upstream, training):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    variables = [v.value for v in layer.trainable_weights]
    grads = tape.gradient(loss, [x] + variables)
    return [np.asarray(tf.cast(t, "float32")) for t in [y] + grads]


def assert_close(actual, expected, rtol, what):
    scale = max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(actual, expected, atol=rtol * scale, rtol=0, err_msg=what)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"center": False}, {"scale": False}, {"momentum": 0.7, "epsilon": 1e-3}],
    ids=["default", "no_center", "no_scale", "momentum_eps"],
)
def test_float32_matches_keras_in_training(kwargs):
    rng = np.random.default_rng(0)
    layer, twin = make_pair(rng, **kwargs)
    for step, x in enumerate(batches(rng, 3)):
        upstream = rng.normal(size=SHAPE).astype("float32")
        ours = forward_and_grads(layer, x, upstream, training=True)
        ref = forward_and_grads(twin, x, upstream, training=True)
        names = ["output", "d/dx"] + [f"d/d{w.name}" for w in twin.trainable_weights]
        for a, b, name in zip(ours, ref, names):
            assert_close(a, b, 1e-5, f"step {step}: {name}")
        for a, b in zip(layer.non_trainable_weights, twin.non_trainable_weights):
            assert_close(np.asarray(a), np.asarray(b), 1e-6, f"step {step}: {a.name}")


def test_float32_matches_keras_in_inference_and_when_frozen():
    rng = np.random.default_rng(1)
    layer, twin = make_pair(rng)
    x = batches(rng, 1)[0]
    upstream = rng.normal(size=SHAPE).astype("float32")
    for a, b in zip(forward_and_grads(layer, x, upstream, False), forward_and_grads(twin, x, upstream, False)):
        assert_close(a, b, 1e-5, "inference")
    # A non-trainable BN normalises with its moving statistics even when training=True.
    layer.trainable = twin.trainable = False
    before = [np.asarray(v) for v in layer.weights]
    assert_close(np.asarray(layer(x, training=True)), np.asarray(twin(x, training=True)), 1e-5, "frozen")
    for a, b in zip(before, layer.weights):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_channels_first_axis_matches_keras():
    rng = np.random.default_rng(2)
    shape = (3, 8, 5, 4)
    layer, twin = make_pair(rng, shape=shape, axis=1)
    x = batches(rng, 1, shape)[0]
    upstream = rng.normal(size=shape).astype("float32")
    for a, b in zip(forward_and_grads(layer, x, upstream, True), forward_and_grads(twin, x, upstream, True)):
        assert_close(a, b, 1e-5, "axis=1")


def test_mixed_bfloat16_dtypes_and_values():
    rng = np.random.default_rng(3)
    shape = (8, 16, 16, 8)
    layer, twin = make_pair(rng, shape=shape, dtype="mixed_bfloat16")
    assert layer.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in layer.weights)
    x = batches(rng, 1, shape)[0]
    upstream = rng.normal(size=shape).astype("float32")
    # Both layers see the same bfloat16 input; results may differ by bfloat16
    # rounding (2**-8 relative to the largest value), not more.
    for training in (True, False):
        y = layer(tf.constant(x), training=training)
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    layer, twin = make_pair(np.random.default_rng(3), shape=shape, dtype="mixed_bfloat16")
    ours = forward_and_grads(layer, x, upstream, True)
    ref = forward_and_grads(twin, x, upstream, True)
    for a, b, name in zip(ours, ref, ["output", "d/dx", "d/dgamma", "d/dbeta"]):
        assert_close(a, b, 2**-7, name)
    for a, b in zip(layer.non_trainable_weights, twin.non_trainable_weights):
        assert a.dtype == "float32"
        assert_close(np.asarray(a), np.asarray(b), 1e-3, a.name)
    assert_close(
        np.asarray(tf.cast(layer(x, training=False), "float32")),
        np.asarray(tf.cast(twin(x, training=False), "float32")),
        2**-7,
        "inference",
    )


def test_config_round_trip_and_defaults():
    layer = BatchNorm(name="bn", center=False, axis=1, gamma_initializer="zeros")
    config = layer.get_config()
    assert config["momentum"] == 0.9 and config["epsilon"] == 1e-5
    clone = BatchNorm.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = BatchNorm(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Activation("relu")(x))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(4)
    images = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    model.train_on_batch(images, rng.normal(size=(4, 8, 8, 4)).astype("float32"))
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    bn = loaded.get_layer("bn")
    assert type(bn) is BatchNorm
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-6)


def test_weights_interchange_with_stock_layer():
    """Same variables in the same order: checkpoints of either layer load into the other."""
    stock = keras.layers.BatchNormalization()
    stock.build(SHAPE)
    ours = BatchNorm()
    ours.build(SHAPE)
    assert [w.name for w in ours.weights] == [w.name for w in stock.weights]
    assert [w.trainable for w in ours.weights] == [w.trainable for w in stock.weights]


def test_mask_falls_back_to_stock():
    rng = np.random.default_rng(5)
    layer, twin = make_pair(rng, shape=(2, 5, 8))
    x = tf.constant(batches(rng, 1, (2, 5, 8))[0])
    mask = tf.constant([[True, True, False, True, False], [True, False, True, True, True]])
    np.testing.assert_allclose(layer(x, training=True, mask=mask), twin(x, training=True, mask=mask), atol=1e-5)


_OTHER_BACKEND = """
import numpy as np, keras
from mitoseg_tf.layers.norm import BatchNorm
from keras import ops
rng = np.random.default_rng(0)
x = (rng.normal(size=(4, 6, 5, 8)) * 2.5 + 4.0).astype("float32")
w = rng.normal(size=x.shape).astype("float32")
layer = BatchNorm(); layer.build(x.shape)
gamma = rng.normal(size=8).astype("float32"); layer.gamma.assign(gamma)
y = np.asarray(ops.convert_to_numpy(layer(x, training=True)))
mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
xhat = (x - mean) / np.sqrt(var + 1e-5)
np.testing.assert_allclose(y, xhat * gamma, atol=1e-4)
np.testing.assert_allclose(ops.convert_to_numpy(layer.moving_mean), 0.1 * mean, atol=1e-5)
# d/dx of sum(y * w), closed form.
g = w * gamma
dx_ref = (g - g.mean((0, 1, 2)) - xhat * (g * xhat).mean((0, 1, 2))) / np.sqrt(var + 1e-5)
import jax
dx = jax.grad(lambda v: (layer(v, training=True) * w).sum())(x)
np.testing.assert_allclose(np.asarray(dx), dx_ref, atol=1e-4)
print("OK", keras.backend.backend())
"""


def test_runs_and_differentiates_on_jax():
    # PyTorch is not a test dependency: PyPI's Linux torch wheel brings gigabytes of CUDA libraries (README).
    backend = "jax"
    jax_without_tensorflow.need(backend)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", PYTHONPATH=repo)
    proc = subprocess.run([sys.executable, "-c", _OTHER_BACKEND], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
