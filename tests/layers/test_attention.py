"""CBAM / CSA against a NumPy reference written from the equations, plus config round trips."""

import keras
import numpy as np
import pytest

from mitoseg_tf.layers import CBAM, CSA, ChannelAttention, SpatialAttention


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_channel_gate(x, layer):
    w1, b1 = [np.asarray(v) for v in layer.fc1.weights]
    w2, b2 = [np.asarray(v) for v in layer.fc2.weights]

    def mlp(v):
        return np.maximum(v @ w1 + b1, 0.0) @ w2 + b2

    gate = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    return gate[:, None, None, :]


def np_conv_same(x, kernel):
    """Plain 'same' cross-correlation, (B,H,W,Cin) * (k,k,Cin,Cout)."""
    k = kernel.shape[0]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("bhwc,co->bhwo", xp[:, dy : dy + x.shape[1], dx : dx + x.shape[2]], kernel[dy, dx])
    return out


def np_spatial_gate(x, layer):
    pooled = np.concatenate([x.max(axis=-1, keepdims=True), x.mean(axis=-1, keepdims=True)], axis=-1)
    logits = np_conv_same(pooled, np.asarray(layer.conv.kernel))
    if layer.use_bn:  # inference mode: moving statistics
        bn = layer.bn
        logits = (logits - np.asarray(bn.moving_mean)) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        logits = logits * np.asarray(bn.gamma) + np.asarray(bn.beta)
    return sigmoid(logits)


@pytest.fixture
def features():
    return np.random.default_rng(0).normal(size=(2, 9, 7, 32)).astype("float32")


def _randomise_bn(layer, rng):
    bn = layer.bn
    bn.moving_mean.assign(rng.normal(size=(1,)).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=(1,)).astype("float32"))
    bn.gamma.assign(rng.uniform(0.5, 1.5, size=(1,)).astype("float32"))
    bn.beta.assign(rng.normal(size=(1,)).astype("float32"))


def test_channel_attention_matches_equation(features):
    layer = ChannelAttention(reduction=8)
    out = np.asarray(layer(features))
    assert layer.fc1.units == 4
    np.testing.assert_allclose(out, features * np_channel_gate(features, layer), rtol=1e-5, atol=1e-5)


def test_channel_attention_keeps_a_hidden_unit_when_narrow():
    layer = ChannelAttention(reduction=16)
    layer(np.ones((1, 4, 4, 8), "float32"))
    assert layer.fc1.units == 1


def test_spatial_attention_matches_equation(features):
    layer = SpatialAttention(kernel_size=7)
    layer.build(features.shape)
    _randomise_bn(layer, np.random.default_rng(1))
    out = np.asarray(layer(features, training=False))
    np.testing.assert_allclose(out, features * np_spatial_gate(features, layer), rtol=1e-4, atol=1e-5)
    assert layer.conv.use_bias is False


@pytest.mark.parametrize("variant", ["cbam", "paper"])
def test_cbam_and_csa_match_equations(features, variant):
    layer = CSA(reduction=8, kernel_size=3, variant=variant)
    layer.build(features.shape)
    _randomise_bn(layer.spatial_gate, np.random.default_rng(2))
    refined = features * np_channel_gate(features, layer.channel_gate)
    target = features if variant == "paper" else refined
    attended = target * np_spatial_gate(refined, layer.spatial_gate)
    out = np.asarray(layer(features, training=False))
    np.testing.assert_allclose(out, features + attended, rtol=1e-4, atol=1e-5)


def test_csa_without_residual_is_cbam(features):
    csa = CSA(residual=False, reduction=8)
    cbam = CBAM(reduction=8)
    csa.build(features.shape)
    cbam.build(features.shape)
    cbam.set_weights(csa.get_weights())
    np.testing.assert_allclose(np.asarray(csa(features)), np.asarray(cbam(features)), rtol=1e-6)


def test_switches_select_gates(features):
    only_channel = CBAM(spatial=False, reduction=8)
    only_channel.build(features.shape)
    assert only_channel.spatial_gate is None
    np.testing.assert_allclose(
        np.asarray(only_channel(features)),
        features * np_channel_gate(features, only_channel.channel_gate),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="at least one"):
        CBAM(channel=False, spatial=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ChannelAttention(reduction=4, min_hidden=2, name="ca"),
        lambda: SpatialAttention(kernel_size=5, use_bn=False, name="sa"),
        lambda: CBAM(reduction=4, kernel_size=3, spatial_bn=False, variant="paper", name="cbam"),
        lambda: CSA(residual=True, channel=False, reduction=4, name="csa"),
    ],
)
def test_config_round_trip_and_serialization(make, features):
    layer = make()
    out = np.asarray(layer(features))
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if not restored.built:
        restored.build(features.shape)
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(restored(features)), out, rtol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_dtypes(policy, features):
    keras.mixed_precision.set_global_policy(policy)
    compute = policy.split("_")[1]
    layer = CSA(reduction=8)
    out = layer(features)
    assert keras.backend.standardize_dtype(out.dtype) == compute
    for sub in (layer.channel_gate.fc1, layer.channel_gate.fc2, layer.spatial_gate.conv, layer.spatial_gate.bn):
        assert sub.compute_dtype == compute
        assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in sub.weights)


@pytest.mark.parametrize("bad", [dict(reduction=0), dict(kernel_size=4), dict(variant="other")])
def test_bad_arguments_are_rejected(bad):
    with pytest.raises(ValueError):
        CBAM(**bad)
