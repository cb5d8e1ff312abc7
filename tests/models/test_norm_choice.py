"""The ``norm`` option every U-Net-family builder shares: BatchNorm, GroupNorm or none."""

import os

import keras
import numpy as np
import pytest

from mitoseg_tf.zoo import build

# One configuration per builder that places normalisation layers itself.
BUILDERS = {
    "unet": {},
    "mcsa_unet": {},
    "res_unet": {},
    "res_unet_5level": {"variant": "residual_5level"},
    "unet_plus_plus": {"deep_supervision": False, "dropout": 0.0},
    "unet_3plus": {"skip_filters": 4, "deep_supervision": False, "cgm": False},
}


def tiny(key, norm, base_filters=4, **extra):
    name = "res_unet" if key == "res_unet_5level" else key
    options = dict(input_shape=(None, None, 3), base_filters=base_filters, norm=norm, **BUILDERS[key], **extra)
    if name in ("unet", "mcsa_unet"):
        options["dropout"] = 0.0
    return build(name, **options)


def _conv_to_norm(model):
    """(conv layer, the layer that consumes it) for every Conv2D of the network body."""
    pairs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and not layer.name.startswith(("mask", "head")):
            consumers = [n.operation for n in layer._outbound_nodes]
            pairs.append((layer, consumers))
    return pairs


@pytest.mark.parametrize("key", list(BUILDERS))
def test_group_norm_replaces_every_batch_norm_and_convs_drop_their_bias(key):
    batch = tiny(key, "batch")
    group = tiny(key, "group")
    plain = tiny(key, None)
    bn_names = sorted(layer.name for layer in batch.layers if type(layer).__name__ == "BatchNorm")
    gn_names = sorted(layer.name for layer in group.layers if isinstance(layer, keras.layers.GroupNormalization))
    assert bn_names and len(gn_names) == len(bn_names)
    # Same places, same names apart from the tag.
    assert sorted(n.replace("_gn", "_bn") for n in gn_names) == bn_names
    assert not any(type(layer).__name__ == "BatchNorm" for layer in group.layers)
    assert not any(
        isinstance(layer, keras.layers.GroupNormalization) or type(layer).__name__ == "BatchNorm"
        for layer in plain.layers
    )
    # A norm's beta replaces the bias of the conv in front of it.
    fed = [
        conv
        for conv, consumers in _conv_to_norm(group)
        if any(isinstance(c, keras.layers.GroupNormalization) for c in consumers)
    ]
    assert fed and not any(conv.use_bias for conv in fed)
    assert all(conv.use_bias for conv, _ in _conv_to_norm(plain))


def test_groups_divide_narrow_layers():
    model = tiny("unet", "group", base_filters=12)
    # gcd(8, 12) = 4 at the first level, gcd(8, 24) = 8 at the second.
    assert model.get_layer("enc1_gn1").groups == 4
    assert model.get_layer("enc2_gn1").groups == 8


def test_group_norm_output_matches_a_numpy_group_normalisation():
    model = tiny("unet", "group", base_filters=8)
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    probe = keras.Model(model.inputs[0], [model.get_layer("enc1_conv1").output, model.get_layer("enc1_gn1").output])
    conv, normed = (np.asarray(t, "float64") for t in probe(images, training=True))
    grouped = conv.reshape(2, 16, 16, 8, 1)  # 8 channels in 8 groups: each channel on its own
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    expected = ((grouped - mean) / np.sqrt(var + 1e-5)).reshape(conv.shape)
    np.testing.assert_allclose(normed, expected, atol=1e-4)


@pytest.mark.parametrize("norm, independent", [("group", True), ("batch", False)])
def test_group_norm_predicts_each_image_from_its_own_statistics(norm, independent):
    """What GroupNorm is for here: a pale image is normalised the same alone or next to a dark one."""
    model = tiny("unet", norm, base_filters=8)
    rng = np.random.default_rng(1)
    pale = rng.uniform(150, 255, (1, 32, 32, 3)).astype("float32")
    dark = rng.uniform(0, 80, (1, 32, 32, 3)).astype("float32")
    alone = np.asarray(model(pale, training=True))
    together = np.asarray(model(np.concatenate([pale, dark]), training=True))[:1]
    assert np.allclose(alone, together, atol=1e-5) is independent
    if norm == "group":
        # No moving statistics: training and inference modes agree.
        np.testing.assert_allclose(np.asarray(model(pale, training=False)), alone, atol=1e-5)


def test_group_norm_model_round_trips_and_keeps_float32_outputs_under_bfloat16(tmp_path):
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny("mcsa_unet", "group", base_filters=8)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    images = np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    out = model(images, training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    path = os.path.join(tmp_path, "gn.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(restored(images, training=False)), np.asarray(out))


@pytest.mark.parametrize("key", list(BUILDERS))
@pytest.mark.parametrize("bad", ["layer", True, "BatchNorm"])
def test_unknown_norm_is_one_clear_error(key, bad):
    with pytest.raises(ValueError, match=r"norm must be 'batch' \(BatchNorm\), 'group' \(GroupNorm.*or None; got"):
        tiny(key, bad)
