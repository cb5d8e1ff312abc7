"""Segmentation losses against hand-computed values and their edge cases."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from mitoseg_tf import losses

# Two pixels in one 1x2 image: a mitosis pixel predicted with p(mitosis)=0.8
# and a background pixel predicted with p(mitosis)=0.4.
TRUTH = np.array([[[1, 0]]])
PROBS_SOFTMAX = np.array([[[[0.2, 0.8], [0.6, 0.4]]]], dtype=np.float32)
PROBS_SIGMOID = np.array([[[[0.8], [0.4]]]], dtype=np.float32)
CE_HAND = -(math.log(0.8) + math.log(0.6)) / 2
# Foreground soft Dice, smooth=1: intersection 0.8, |truth| 1, sum(p) 0.8+0.4.
DICE_FG_HAND = 1 - (2 * 0.8 + 1) / (1 + 1.2 + 1)
# Background: intersection 0.6, |truth| 1, sum(p) 0.2+0.6.
DICE_BG = (2 * 0.6 + 1) / (1 + 0.8 + 1)
DICE_ALL_HAND = 1 - ((2 * 0.8 + 1) / (1 + 1.2 + 1) + DICE_BG) / 2

ALL_LOSSES = [losses.CrossEntropy, losses.SoftDice, losses.CEDice, losses.Focal]


def _value(x):
    return float(ops.convert_to_numpy(x))


def _logit(p):
    return np.log(p / (1 - p)).astype(np.float32)


@pytest.mark.parametrize("probs", [PROBS_SOFTMAX, PROBS_SIGMOID], ids=["softmax", "sigmoid"])
def test_cross_entropy_by_hand(probs):
    assert _value(losses.CrossEntropy()(TRUTH, probs)) == pytest.approx(CE_HAND, rel=1e-5)
    # Labels with a trailing channel axis are accepted.
    assert _value(losses.CrossEntropy()(TRUTH[..., None], probs)) == pytest.approx(CE_HAND, rel=1e-5)


@pytest.mark.parametrize("probs", [PROBS_SOFTMAX, PROBS_SIGMOID], ids=["softmax", "sigmoid"])
def test_soft_dice_by_hand(probs):
    assert _value(losses.SoftDice()(TRUTH, probs)) == pytest.approx(DICE_FG_HAND, rel=1e-5)
    assert _value(losses.SoftDice(classes="all")(TRUTH, probs)) == pytest.approx(DICE_ALL_HAND, rel=1e-5)
    assert _value(losses.SoftDice(classes=[0])(TRUTH, probs)) == pytest.approx(1 - DICE_BG, rel=1e-5)


def test_soft_dice_per_image_by_hand():
    # Image A: one mitosis pixel, p=0.8. Image B: one background pixel, p=0.4.
    truth = np.array([[[1]], [[0]]])
    probs = np.array([[[[0.8]]], [[[0.4]]]], dtype=np.float32)
    per_image = 1 - ((2 * 0.8 + 1) / (1 + 0.8 + 1) + (0 + 1) / (0 + 0.4 + 1)) / 2
    pooled = 1 - (2 * 0.8 + 1) / (1 + 1.2 + 1)
    assert _value(losses.SoftDice(per_image=True)(truth, probs)) == pytest.approx(per_image, rel=1e-5)
    assert _value(losses.SoftDice(per_image=False)(truth, probs)) == pytest.approx(pooled, rel=1e-5)


def test_focal_by_hand():
    gamma2 = -(0.2**2 * math.log(0.8) + 0.4**2 * math.log(0.6)) / 2
    assert _value(losses.Focal()(TRUTH, PROBS_SOFTMAX)) == pytest.approx(gamma2, rel=1e-5)
    # alpha=0.25 weights the mitosis pixel by 0.25 and the background one by 0.75.
    alpha = -(0.25 * 0.2**2 * math.log(0.8) + 0.75 * 0.4**2 * math.log(0.6)) / 2
    assert _value(losses.Focal(alpha=0.25)(TRUTH, PROBS_SIGMOID)) == pytest.approx(alpha, rel=1e-5)
    assert _value(losses.Focal(alpha=[0.75, 0.25])(TRUTH, PROBS_SOFTMAX)) == pytest.approx(alpha, rel=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("from_logits", [False, True])
def test_focal_with_gamma_zero_is_cross_entropy(channels, from_logits):
    rng = np.random.default_rng(channels)
    truth = rng.integers(0, max(channels, 2), size=(2, 4, 4))
    scores = rng.normal(size=(2, 4, 4, channels)).astype(np.float32)
    if not from_logits:
        scores = ops.convert_to_numpy(ops.sigmoid(scores) if channels == 1 else ops.softmax(scores))
    ce = losses.CrossEntropy(from_logits=from_logits)(truth, scores)
    focal = losses.Focal(gamma=0.0, from_logits=from_logits)(truth, scores)
    assert _value(focal) == pytest.approx(_value(ce), rel=1e-6)


@pytest.mark.parametrize("channels", [1, 2])
def test_ce_dice_is_weighted_sum(channels):
    rng = np.random.default_rng(11)
    truth = (rng.random((3, 5, 5)) < 0.3).astype(np.int64)
    logits = rng.normal(size=(3, 5, 5, channels)).astype(np.float32)
    for per_image in (False, True):
        ce = _value(losses.CrossEntropy(from_logits=True)(truth, logits))
        dice = _value(losses.SoftDice(per_image=per_image, from_logits=True)(truth, logits))
        combined = losses.CEDice(per_image=per_image, from_logits=True)
        assert _value(combined(truth, logits)) == pytest.approx(ce + dice, rel=1e-5)
        weighted = losses.CEDice(ce_weight=0.3, dice_weight=2.0, per_image=per_image, from_logits=True)
        assert _value(weighted(truth, logits)) == pytest.approx(0.3 * ce + 2.0 * dice, rel=1e-5)


@pytest.mark.parametrize("cls", ALL_LOSSES)
@pytest.mark.parametrize("channels", [1, 2])
def test_logits_match_activated_probabilities(cls, channels):
    rng = np.random.default_rng(12)
    truth = (rng.random((2, 4, 4)) < 0.3).astype(np.int64)
    logits = rng.normal(size=(2, 4, 4, channels)).astype(np.float32)
    probs = ops.sigmoid(logits) if channels == 1 else ops.softmax(logits)
    from_logits = _value(cls(from_logits=True)(truth, logits))
    from_probs = _value(cls(from_logits=False)(truth, probs))
    assert from_logits == pytest.approx(from_probs, rel=1e-5)


@pytest.mark.parametrize("cls", ALL_LOSSES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("from_logits", [False, True])
def test_finite_float32_on_empty_masks_with_bfloat16(cls, channels, from_logits):
    truth = np.zeros((2, 8, 8), dtype=np.int64)
    # Extreme, saturated outputs: confident background and confident (wrong)
    # mitosis, including probabilities of exactly 0 and 1.
    if from_logits:
        scores = np.full((2, 8, 8, channels), 40.0, dtype=np.float32)
        scores[0] = -40.0
    else:
        scores = np.zeros((2, 8, 8, channels), dtype=np.float32)
        scores[1, ..., -1] = 1.0
        if channels == 2:
            scores[0, ..., 0] = 1.0
    loss = cls(from_logits=from_logits)(truth, ops.cast(scores, "bfloat16"))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert np.isfinite(_value(loss))


def test_training_step_on_empty_masks_is_finite():
    # Gradients too must stay finite when a batch holds no mitosis at all.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(2, 1)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(13).normal(size=(4, 8, 8, 3)).astype(np.float32)
    y = np.zeros((4, 8, 8), dtype=np.int64)
    for name in losses.LOSS_NAMES:
        model.compile(optimizer="sgd", loss=losses.get_loss(name, from_logits=True))
        history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
        assert np.all(np.isfinite(history.history["loss"])), name
        assert all(np.all(np.isfinite(ops.convert_to_numpy(w))) for w in model.weights), name


@pytest.mark.parametrize(
    "loss",
    [losses.CrossEntropy(), losses.Focal(), losses.SoftDice(per_image=True), losses.CEDice(per_image=True)],
    ids=lambda loss: loss.name,
)
def test_sample_weight_drops_an_image(loss):
    truth = np.array([[[1, 0]], [[0, 1]]])
    probs = np.concatenate([PROBS_SOFTMAX, PROBS_SOFTMAX[..., ::-1]], axis=0)
    # Per-image output (SoftDice) takes (B,) weights, per-pixel ones (B, H, W).
    shape = (2,) if isinstance(loss, losses.SoftDice) else (2, 1, 2)
    weight = np.ones(shape, np.float32)
    weight[1] = 0.0
    first_only = _value(loss(truth[:1], probs[:1]))
    # The default reduction divides by the number of values, weighted or not.
    assert _value(loss(truth, probs, sample_weight=weight)) == pytest.approx(first_only / 2, rel=1e-5)
    assert _value(loss(truth, probs)) != pytest.approx(first_only / 2, rel=1e-3)


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_config_round_trip(cls):
    kwargs = {"from_logits": True}
    if cls in (losses.SoftDice, losses.CEDice):
        kwargs.update(smooth=0.5, classes="all", per_image=True)
    if cls is losses.Focal:
        kwargs.update(gamma=1.5, alpha=[0.3, 0.7])
    loss = cls(**kwargs)
    config = loss.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    assert cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == config


def test_get_loss():
    assert isinstance(losses.get_loss("ce"), losses.CrossEntropy)
    assert isinstance(losses.get_loss("dice"), losses.SoftDice)
    assert isinstance(losses.get_loss("ce_dice"), losses.CEDice)
    assert isinstance(losses.get_loss("focal"), losses.Focal)
    assert losses.get_loss("ce", from_logits=True).from_logits is True
    assert losses.get_loss("focal").from_logits is False
    instance = losses.SoftDice(smooth=2.0)
    assert losses.get_loss(instance) is instance


def test_get_loss_errors():
    with pytest.raises(ValueError, match="ce, dice, ce_dice, focal"):
        losses.get_loss("bce")
    with pytest.raises(TypeError):
        losses.get_loss(3)


def test_argument_and_shape_errors():
    with pytest.raises(ValueError, match="classes"):
        losses.SoftDice(classes="background")
    with pytest.raises(ValueError, match="gamma"):
        losses.Focal(gamma=-1.0)
    with pytest.raises(ValueError, match="float32"):
        losses.CrossEntropy(dtype="bfloat16")
    one_hot = np.eye(2)[TRUTH]
    with pytest.raises(ValueError, match="one-hot"):
        losses.CrossEntropy()(one_hot, PROBS_SOFTMAX)
    with pytest.raises(ValueError, match="alpha"):
        losses.Focal(alpha=[1.0, 1.0, 1.0])(TRUTH, PROBS_SOFTMAX)


def test_mixed_precision_policy_still_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((8, 8, 3))
        model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
        x = np.random.default_rng(14).normal(size=(2, 8, 8, 3)).astype(np.float32)
        y = np.zeros((2, 8, 8), dtype=np.int64)
        assert keras.backend.standardize_dtype(model(x).dtype) == "bfloat16"
        for cls in ALL_LOSSES:
            loss = cls(from_logits=True)
            assert loss.dtype == "float32"
            value = loss(y, model(x))
            assert keras.backend.standardize_dtype(value.dtype) == "float32"
            assert np.isfinite(_value(value))
    finally:
        keras.mixed_precision.set_global_policy("float32")
