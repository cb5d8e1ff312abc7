"""Res-UNet, UNet++ and UNet 3+: what the shared zoo test cannot know about them.

Parameter counts at the papers' widths (the official implementations'
numbers), UNet++'s deep-supervision outputs and pruning, the UNet 3+
classification-guided module and its gate, and a deep-supervision model
through the shared compile / fit / evaluate helpers.
"""

import keras
import numpy as np
import pytest

from mitoseg_tf.data.pipeline import make_pipeline
from mitoseg_tf.data.sources import load_source
from mitoseg_tf.models.res_unet import build_res_unet
from mitoseg_tf.models.unet_3plus import build_unet_3plus
from mitoseg_tf.models.unet_plus_plus import build_unet_plus_plus, transfer_weights
from mitoseg_tf.training import compile_model, evaluate, fit, format_table, output_roles
from mitoseg_tf.training.targets import head_weights
from mitoseg_tf.zoo import build, get_card


def _within(count, reference, tolerance=0.01):
    return abs(count - reference) <= tolerance * reference


def _randomise(model, seed=0):
    """Non-trivial weights everywhere, BN statistics included, so equalities are not vacuous."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            weight.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            weight.assign(rng.normal(0.0, 0.3, shape).astype("float32"))


def _images(batch=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _by_name(model, outputs):
    return dict(zip(model.output_names, [np.asarray(o) for o in keras.tree.flatten(outputs)]))


# --------------------------------------------------------------------------
# Parameter counts at the papers' default widths
# --------------------------------------------------------------------------


def test_res_unet_parameter_count():
    # Zhang et al. report 7.8 M (their Table 1's 3x3 convs, 7.78 M); the 1x1
    # projection shortcuts bring it to 8.23 M, within 1 % of the 7.8-8.2 M range.
    count = build_res_unet().count_params()
    assert 7.8e6 * 0.99 <= count <= 8.2e6 * 1.01, count


def test_unet_plus_plus_parameter_count():
    count = build_unet_plus_plus(deep_supervision=False).count_params()
    assert _within(count, 9.04e6), count
    # The official code's printed total, for its one-channel input and one sigmoid class.
    official = build_unet_plus_plus(
        (96, 96, 1), num_classes=1, output_activation="sigmoid", deep_supervision=False
    ).count_params()
    assert official == 9_041_601


def test_unet_3plus_parameter_count():
    plain = build_unet_3plus(deep_supervision=False, cgm=False).count_params()
    supervised = build_unet_3plus(deep_supervision=True, cgm=True).count_params()
    assert _within(plain, 26.97e6), plain
    assert _within(supervised, 27.0e6), supervised


# --------------------------------------------------------------------------
# UNet++
# --------------------------------------------------------------------------


def test_unet_plus_plus_deep_supervision_returns_four_maps_named_by_node():
    model = build_unet_plus_plus((32, 32, 3), base_filters=4, dropout=0.0)
    assert model.output_names == ["mask", "mask_x0_4", "mask_x0_3", "mask_x0_2", "mask_x0_1"]
    outputs = _by_name(model, model(_images(), training=False))
    heads = [outputs[f"mask_x0_{j}"] for j in range(1, 5)]
    for head in heads:
        assert head.shape == (2, 32, 32, 2)
    # "accurate" inference: the average of the four probability maps.
    np.testing.assert_allclose(outputs["mask"], np.mean(heads, axis=0), rtol=1e-6, atol=1e-7)
    # Heads sit on X^{0,1..4}, never on the encoder node X^{0,0}.
    assert {layer.name for layer in model.layers if layer.name.startswith("head_")} == {
        f"head_x0_{j}" for j in range(1, 5)
    }


def test_unet_plus_plus_nodes_concatenate_every_earlier_node_of_their_row():
    model = build_unet_plus_plus((32, 32, 3), base_filters=4, dropout=0.0)
    for i, j in [(0, 1), (0, 4), (1, 3), (2, 2), (3, 1)]:
        sources = [t._keras_history.operation.name for t in model.get_layer(f"x{i}_{j}_concat").input]
        assert sources[0] == f"x{i}_{j}_up"
        # Each X^{i,k} ends with its second ReLU (dropout is off).
        assert sources[1:] == [f"x{i}_{k}_relu2" for k in range(j)]


@pytest.mark.parametrize("norm", [None, "batch"])
@pytest.mark.parametrize("fast_head", [2, 4])
def test_fast_mode_equals_the_chosen_head_of_the_full_network(fast_head, norm):
    options = dict(input_shape=(None, None, 3), base_filters=4, norm=norm, dropout=0.0)
    full = build_unet_plus_plus(**options)
    _randomise(full)
    fast = build_unet_plus_plus(**options, mode="fast", fast_head=fast_head, deep_supervision=False)
    copied = transfer_weights(full, fast)
    assert copied == [layer.name for layer in fast.layers if layer.weights]
    assert fast.count_params() <= full.count_params()
    # Pruned: no node beyond column fast_head is built.
    names = {layer.name for layer in fast.layers}
    assert f"x0_{fast_head}_conv1" in names
    assert not any(n.startswith(f"x{fast_head + 1}_0_") or n.startswith(f"x0_{fast_head + 1}_") for n in names)
    images = _images(size=32)
    expected = _by_name(full, full(images, training=False))[f"mask_x0_{fast_head}"]
    np.testing.assert_array_equal(np.asarray(fast(images, training=False)), expected)


def test_fast_mode_with_deep_supervision_keeps_the_pruned_heads():
    model = build_unet_plus_plus((32, 32, 3), base_filters=4, dropout=0.0, mode="fast", fast_head=3)
    assert model.output_names == ["mask", "mask_x0_2", "mask_x0_1"]
    # L^2 downsamples twice, so it accepts sizes the full network would reject.
    small = build_unet_plus_plus((12, 12, 3), base_filters=4, mode="fast", fast_head=2, deep_supervision=False)
    assert small.output_shape == (None, 12, 12, 2)


def test_unet_plus_plus_argument_errors():
    with pytest.raises(ValueError, match="mode"):
        build_unet_plus_plus(mode="pruned")
    with pytest.raises(ValueError, match="fast_head"):
        build_unet_plus_plus(mode="fast", fast_head=5)
    with pytest.raises(ValueError, match="upsampling"):
        build_unet_plus_plus(upsampling="nearest")


# --------------------------------------------------------------------------
# UNet 3+
# --------------------------------------------------------------------------


def _unet_3plus(**overrides):
    options = dict(input_shape=(32, 32, 3), base_filters=4, skip_filters=4, cgm_dropout=0.0)
    return build_unet_3plus(**{**options, **overrides})


def _force_cgm(model, logit):
    """Make the CGM answer ``sigmoid(logit)`` for every tile."""
    layer = model.get_layer("cgm_conv")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.full_like(bias, logit)])


def test_unet_3plus_outputs_and_full_scale_skips():
    model = _unet_3plus()
    assert model.output_names == ["mask", "mask_hd2", "mask_hd3", "mask_hd4", "mask_hd5", "cls"]
    # Every decoder stage takes all five scales, skip_filters channels each.
    for stage in (1, 2, 3, 4):
        assert len(model.get_layer(f"hd{stage}_concat").input) == 5
        assert model.get_layer(f"hd{stage}_fuse_conv").output.shape[-1] == 5 * 4
    # The same-scale encoder map joins hd1 too (the popular port drops it).
    assert "hd1_from_h1_conv" in {layer.name for layer in model.layers}
    outputs = _by_name(model, model(_images(batch=3), training=False))
    for name in model.output_names[:-1]:
        assert outputs[name].shape == (3, 32, 32, 2)


def test_cgm_output_is_a_per_tile_probability():
    model = _unet_3plus()
    _randomise(model)
    cls = _by_name(model, model(_images(batch=3), training=False))["cls"]
    assert cls.shape == (3, 1)
    assert np.all((cls >= 0.0) & (cls <= 1.0))


@pytest.mark.parametrize("activation,channels", [("softmax", 2), ("sigmoid", 1)])
def test_gate_zeroes_the_foreground_of_rejected_tiles(activation, channels):
    model = _unet_3plus(output_activation=activation, num_classes=channels)
    ungated = _unet_3plus(output_activation=activation, num_classes=channels, cgm_gate=False)
    _randomise(model)
    images = _images()

    _force_cgm(model, -30.0)  # every tile rejected
    out = _by_name(model, model(images, training=False))
    assert np.all(out["cls"] < 0.5)
    for name in ("mask", "mask_hd2", "mask_hd3", "mask_hd4", "mask_hd5"):
        foreground = out[name][..., 1:] if channels > 1 else out[name]
        assert np.all(foreground == 0.0), name
        if channels > 1:
            np.testing.assert_array_equal(out[name][..., 0], 1.0)
    # Training sees the ungated maps, so the decoder still learns from every tile.
    trained = _by_name(model, model(images, training=True))
    assert np.any(trained["mask"][..., -1] > 0.0)

    _force_cgm(model, 30.0)  # every tile accepted: the maps are the ungated ones, bit for bit
    transfer_weights(model, ungated)
    accepted = _by_name(model, model(images, training=False))
    reference = _by_name(ungated, ungated(images, training=False))
    for name in ("mask", "mask_hd5"):
        np.testing.assert_array_equal(accepted[name], reference[name])


def test_gate_needs_probability_maps():
    with pytest.raises(ValueError, match="gate"):
        _unet_3plus(output_activation=None)
    assert _unet_3plus(output_activation=None, cgm_gate=False).output_names[-1] == "cls"


# --------------------------------------------------------------------------
# Res-UNet
# --------------------------------------------------------------------------


def test_res_unet_variants():
    zhang = build_res_unet((32, 32, 3), base_filters=4)
    names = {layer.name for layer in zhang.layers}
    # Three strided downsamplings, no pooling, pre-activation units with projection shortcuts.
    assert {"enc2_conv1", "enc3_conv1", "bridge_conv1", "bridge_shortcut_conv"} <= names
    assert zhang.get_layer("bridge_conv1").strides == (2, 2)
    assert not any("pool" in n for n in names)
    five = build_res_unet((32, 32, 3), base_filters=4, variant="residual_5level")
    assert five.get_layer("bottleneck_conv1").output.shape[1:3] == (2, 2)
    with pytest.raises(ValueError, match="variant"):
        build_res_unet(variant="resunet_a")


# --------------------------------------------------------------------------
# Through the shared training helpers
# --------------------------------------------------------------------------


def test_deep_supervision_model_trains_and_evaluates_through_the_shared_helpers():
    keras.utils.set_random_seed(0)
    model = build("unet_3plus", **{**get_card("unet_3plus").tiny, "input_shape": (None, None, 3)})
    roles = output_roles(model)
    source = load_source("synthetic", "train", num_examples=4, size=64)
    train = make_pipeline(source, training=True, batch_size=2, crop_size=32, roles=roles)
    val = make_pipeline(source, training=False, batch_size=2, roles=roles)
    compile_model(model, loss="hybrid", head_weighting="halving")
    history = fit(model, train, epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    # The total is the halving-weighted sum of the heads plus the CGM's BCE.
    weights = head_weights([n for n, r in roles.items() if r == "segmentation"], "halving")
    assert weights["mask"] > weights["mask_hd2"] > weights["mask_hd3"] > weights["mask_hd4"] > weights["mask_hd5"]
    total = sum(w * history[f"{n}_loss"][0] for n, w in weights.items()) + history["cls_loss"][0]
    assert history["loss"][0] == pytest.approx(total, rel=1e-4)
    assert "mask_mitosis_dice" in history

    results = evaluate(model, val)
    assert results["num_images"] == 4
    assert set(results["model"]["pooled"]) >= {"mean_dice", "paper_mpa", "miou"}
    assert "Mean Dice" in format_table(results)


def test_unet_plus_plus_halving_weights_follow_the_columns():
    model = build_unet_plus_plus((32, 32, 3), base_filters=4)
    weights = head_weights(list(output_roles(model)), "halving")
    assert weights["mask_x0_4"] > weights["mask_x0_3"] > weights["mask_x0_2"] > weights["mask_x0_1"]
