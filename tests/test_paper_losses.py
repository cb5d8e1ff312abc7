"""UNet++'s BCE-Dice and UNet 3+'s hybrid loss (focal + MS-SSIM + IoU)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from mitoseg_tf import losses

# The two-pixel example of test_losses.py: a mitosis pixel at p = 0.8 and a
# background pixel at p = 0.4.
TRUTH = np.array([[[1, 0]]])
PROBS_SOFTMAX = np.array([[[[0.2, 0.8], [0.6, 0.4]]]], dtype=np.float32)
PROBS_SIGMOID = np.array([[[[0.8], [0.4]]]], dtype=np.float32)
CE_HAND = -(math.log(0.8) + math.log(0.6)) / 2
DICE_HAND = (2 * 0.8 + 1) / (1 + 1.2 + 1)
FOCAL_HAND = -(0.2**2 * math.log(0.8) + 0.4**2 * math.log(0.6)) / 2
# 1x2 image: the window shrinks to 1x1, one scale, so SSIM is the per-pixel
# luminance term (the contrast-structure term of a 1x1 window is C2 / C2 = 1).
C1 = 0.01**2
SSIM_HAND = ((2 * 0.8 * 1 + C1) / (0.8**2 + 1 + C1) + C1 / (0.4**2 + C1)) / 2
# IoU with smooth 1: intersection 0.8, union 1 + 1.2 - 0.8.
IOU_HAND = 1 - (0.8 + 1) / (1.4 + 1)

NEW_LOSSES = [losses.BCEDice, losses.Hybrid]


def _value(x):
    return float(ops.convert_to_numpy(x))


@pytest.mark.parametrize("probs", [PROBS_SOFTMAX, PROBS_SIGMOID], ids=["softmax", "sigmoid"])
def test_bce_dice_by_hand(probs):
    # 0.5 * BCE + (1 - Dice): the official 0.5 * BCE - Dice plus 1.
    assert _value(losses.BCEDice()(TRUTH, probs)) == pytest.approx(0.5 * CE_HAND + 1 - DICE_HAND, rel=1e-5)


@pytest.mark.parametrize("probs", [PROBS_SOFTMAX, PROBS_SIGMOID], ids=["softmax", "sigmoid"])
def test_hybrid_by_hand(probs):
    expected = FOCAL_HAND + (1 - SSIM_HAND) + IOU_HAND
    assert _value(losses.Hybrid()(TRUTH, probs)) == pytest.approx(expected, rel=1e-5)
    ssim_loss, iou_loss = losses.Hybrid().per_image_terms(TRUTH, probs)
    assert _value(ssim_loss[0]) == pytest.approx(1 - SSIM_HAND, rel=1e-5)
    assert _value(iou_loss[0]) == pytest.approx(IOU_HAND, rel=1e-5)
    weighted = losses.Hybrid(focal_weight=2.0, ssim_weight=0.0, iou_weight=0.5)
    assert _value(weighted(TRUTH, probs)) == pytest.approx(2 * FOCAL_HAND + 0.5 * IOU_HAND, rel=1e-5)


def test_ms_ssim_of_identical_images_is_one():
    rng = np.random.default_rng(0)
    for size in (8, 32, 64, 256):
        x = rng.random((2, size, size, 1)).astype(np.float32)
        np.testing.assert_allclose(ops.convert_to_numpy(losses.ms_ssim(x, x)), 1.0, rtol=1e-6)
    assert _value(losses.ms_ssim(np.zeros((1, 64, 64, 1)), np.zeros((1, 64, 64, 1)))[0]) == pytest.approx(1.0)


def test_scales_are_limited_by_the_tile_size():
    assert [losses.ms_ssim_scales(s) for s in (8, 16, 32, 64, 128, 176, 256)] == [1, 1, 2, 3, 4, 5, 5]
    assert losses.ms_ssim_scales(None) == 5
    assert losses.ms_ssim_scales(256, max_scales=3) == 3


def test_ssim_and_ms_ssim_match_tensorflow():
    # Independent reference: tf.image's SSIM (same Gaussian window, K1, K2, valid
    # filtering) and MS-SSIM with the weights of the scales a 64-px tile gets.
    rng = np.random.default_rng(1)
    x = rng.random((2, 64, 64, 1)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype(np.float32)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.ssim(x, y)), tf.image.ssim(x, y, 1.0).numpy(), rtol=1e-5)
    weights = np.array([0.0448, 0.2856, 0.3001])
    reference = tf.image.ssim_multiscale(x, y, 1.0, power_factors=weights / weights.sum()).numpy()
    np.testing.assert_allclose(ops.convert_to_numpy(losses.ms_ssim(x, y)), reference, rtol=1e-5)


@pytest.mark.parametrize("cls", NEW_LOSSES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("from_logits", [False, True])
def test_finite_float32_on_empty_masks_with_bfloat16(cls, channels, from_logits):
    truth = np.zeros((2, 32, 32), dtype=np.int64)
    if from_logits:
        scores = np.full((2, 32, 32, channels), 40.0, dtype=np.float32)
        scores[0] = -40.0
    else:
        scores = np.zeros((2, 32, 32, channels), dtype=np.float32)
        scores[1, ..., -1] = 1.0
        if channels == 2:
            scores[0, ..., 0] = 1.0
    loss = cls(from_logits=from_logits)(truth, ops.cast(scores, "bfloat16"))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert np.isfinite(_value(loss))


@pytest.mark.parametrize("name", ["bce_dice", "hybrid"])
def test_gradients_finite_on_empty_masks_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(2, 1, dtype="mixed_bfloat16")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=losses.get_loss(name, from_logits=True))
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    y = np.zeros((2, 32, 32), dtype=np.int64)
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(ops.convert_to_numpy(w))) for w in model.weights)


def test_logits_match_probabilities():
    rng = np.random.default_rng(3)
    truth = (rng.random((2, 16, 16)) < 0.3).astype(np.int64)
    for channels in (1, 2):
        logits = rng.normal(size=(2, 16, 16, channels)).astype(np.float32)
        probs = ops.sigmoid(logits) if channels == 1 else ops.softmax(logits)
        for cls in NEW_LOSSES:
            assert _value(cls(from_logits=True)(truth, logits)) == pytest.approx(_value(cls()(truth, probs)), rel=1e-5)


def test_perfect_prediction_scores_near_zero():
    truth = np.zeros((1, 32, 32), dtype=np.int64)
    truth[0, 8:16, 8:16] = 1
    probs = truth[..., None].astype(np.float32)
    assert _value(losses.BCEDice()(truth, probs)) == pytest.approx(0.0, abs=1e-5)
    assert _value(losses.Hybrid()(truth, probs)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("cls", NEW_LOSSES)
def test_config_round_trip(cls):
    kwargs = {"from_logits": True}
    if cls is losses.Hybrid:
        kwargs.update(gamma=1.5, alpha=0.25, ssim_weight=0.5, iou_smooth=0.5, max_scales=3, window_size=7)
    else:
        kwargs.update(ce_weight=0.3, smooth=2.0)
    loss = cls(**kwargs)
    config = loss.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == config


def test_get_loss_knows_the_paper_losses():
    assert isinstance(losses.get_loss("bce_dice"), losses.BCEDice)
    assert isinstance(losses.get_loss("hybrid", from_logits=True), losses.Hybrid)
    assert losses.get_loss("hybrid", from_logits=True).from_logits is True
    assert {"bce_dice", "hybrid"} <= set(losses.LOSS_NAMES)


def test_hybrid_argument_errors():
    with pytest.raises(ValueError, match="max_scales"):
        losses.Hybrid(max_scales=6)
    with pytest.raises(ValueError, match="iou_smooth"):
        losses.Hybrid(iou_smooth=-1.0)
