"""Segmentation losses for the model zoo (Keras 3, any backend).

Every loss takes integer labels y_true of shape (B, H, W) or (B, H, W, 1) and
scores y_pred of shape (B, H, W, C). C == 1 means a sigmoid output for the
binary task (mitosis vs background), C > 1 a softmax over C classes;
`from_logits` says whether the scores are pre-activation.

Predictions are cast to float32 before anything else: under mixed precision
they arrive as (b)float16, where log(1e-7) underflows and batch sums over
512x512 pixels overflow. Every loss returns float32.

Shapes returned by `call` (what `sample_weight` must broadcast against):
per-pixel maps (B, H, W) for `CrossEntropy`, `Focal`, `CEDice`, `BCEDice`
and `Hybrid`, per-image values (B,) for `SoftDice`. With the default
reduction the result is the mean over pixels (for SoftDice, over images) of
these.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "BCEDice",
    "CEDice",
    "CrossEntropy",
    "Focal",
    "Hybrid",
    "LOSS_NAMES",
    "SoftDice",
    "get_loss",
    "ms_ssim",
    "ssim",
]

# Probabilities are clipped to [_EPS, 1 - _EPS] before the log so that a
# confident wrong prediction costs about 16 nats instead of infinity. 1e-7
# is still distinguishable from 1 in float32, unlike float16.
_EPS = 1e-7


def _float32_dtype(dtype):
    policy = keras.dtype_policies.get(dtype or "float32")
    if policy.compute_dtype != "float32":
        raise ValueError(
            "These losses compute and return float32 whatever the model's "
            f"precision; got dtype={dtype!r}. Mixed-precision predictions "
            "need no special dtype here: they are cast on entry."
        )
    return "float32"


def _prepare(y_true, y_pred):
    """Returns (int32 labels (B, ...), float32 scores (B, ..., C), C)."""
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    channels = y_pred.shape[-1]
    if channels is None:
        raise ValueError("y_pred needs a static channel (last) dimension")
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape):
        if y_true.shape[-1] not in (1, None):
            raise ValueError(
                "y_true must hold integer labels of shape (B, H, W) or "
                f"(B, H, W, 1); got {tuple(y_true.shape)} for y_pred of shape "
                f"{tuple(y_pred.shape)} (one-hot targets are not accepted)"
            )
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != len(y_pred.shape) - 1:
        raise ValueError(f"y_true shape {tuple(y_true.shape)} does not match y_pred shape {tuple(y_pred.shape)}")
    return ops.cast(y_true, "int32"), y_pred, channels


def _true_class_log_prob(y_true, y_pred, channels, from_logits):
    """log p(true class) per pixel, computed stably."""
    if channels == 1:
        x = y_pred[..., 0]
        positive = ops.cast(ops.equal(y_true, 1), "float32")
        if from_logits:
            # log_sigmoid avoids the log(0) that sigmoid-then-log hits for
            # large |logits|, so no clipping is needed on this path.
            log_p, log_q = ops.log_sigmoid(x), ops.log_sigmoid(-x)
        else:
            p = ops.clip(x, _EPS, 1.0 - _EPS)
            log_p, log_q = ops.log(p), ops.log(1.0 - p)
        return positive * log_p + (1.0 - positive) * log_q
    if from_logits:
        log_probs = ops.log_softmax(y_pred, axis=-1)
    else:
        log_probs = ops.log(ops.clip(y_pred, _EPS, 1.0))
    one_hot = ops.one_hot(y_true, channels, dtype="float32")
    return ops.sum(one_hot * log_probs, axis=-1)


def _class_probs(y_pred, channels, from_logits):
    """Per-class probabilities (B, ..., K), K = max(C, 2).

    A sigmoid output is expanded to [1 - p, p] so that "all" classes and
    class ids mean the same for C == 1 as for a two-channel softmax.
    """
    if channels == 1:
        p = ops.sigmoid(y_pred) if from_logits else y_pred
        return ops.concatenate([1.0 - p, p], axis=-1)
    return ops.softmax(y_pred, axis=-1) if from_logits else y_pred


class _SegmentationLoss(keras.losses.Loss):
    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", dtype="float32"):
        super().__init__(name=name, reduction=reduction, dtype=_float32_dtype(dtype))
        self.from_logits = bool(from_logits)

    def get_config(self):
        config = super().get_config()
        config.update({"from_logits": self.from_logits, "dtype": self.dtype})
        return config


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class CrossEntropy(_SegmentationLoss):
    """Pixel-wise cross-entropy, the MCSA-Unet paper's loss.

    Binary CE for a sigmoid output (C == 1), sparse categorical CE otherwise.
    """

    def __init__(self, from_logits=False, name="cross_entropy", **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true, y_pred, channels = _prepare(y_true, y_pred)
        return -_true_class_log_prob(y_true, y_pred, channels, self.from_logits)


def _check_classes(classes):
    if isinstance(classes, str):
        if classes not in ("foreground", "all"):
            raise ValueError(f'classes must be "foreground", "all" or a list of class ids; got {classes!r}')
        return classes
    ids = [int(c) for c in classes]
    if not ids or any(c < 0 for c in ids):
        raise ValueError(f"classes must be a non-empty list of class ids >= 0; got {classes!r}")
    return ids


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class SoftDice(_SegmentationLoss):
    """1 - soft Dice, averaged over the selected classes.

    Soft Dice of class c: (2 sum(t_c p_c) + smooth) / (sum(t_c) + sum(p_c) + smooth)
    with t the one-hot truth and p the predicted probabilities.

    classes: "foreground" (1..C-1; the single channel of a sigmoid output),
    "all", or a list of class ids. Background is left out by default because
    with mitoses covering well under 1% of pixels its Dice is close to 1 and
    only dilutes the gradient.

    per_image=False pools the sums over the whole batch (one Dice per class
    per batch): a batch with no mitosis then still has a well-defined,
    low-variance value. per_image=True computes Dice per image, then the mean
    over images, so images without mitoses push their predictions to zero
    through `smooth` alone.
    """

    def __init__(
        self,
        smooth=1.0,
        classes="foreground",
        per_image=False,
        from_logits=False,
        name="soft_dice",
        **kwargs,
    ):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0; got {smooth}")
        self.smooth = float(smooth)
        self.classes = _check_classes(classes)
        self.per_image = bool(per_image)

    def _select(self, x, num_classes):
        if self.classes == "all":
            return x
        if self.classes == "foreground":
            return x[..., 1:]
        if max(self.classes) >= num_classes:
            raise ValueError(f"classes {self.classes} out of range for {num_classes} classes")
        return ops.take(x, self.classes, axis=-1)

    def per_image_loss(self, y_true, y_pred):
        """1 - Dice as a (B,) tensor (the pooled value repeated if not per_image)."""
        y_true, y_pred, channels = _prepare(y_true, y_pred)
        probs = _class_probs(y_pred, channels, self.from_logits)
        num_classes = max(channels, 2)
        truth = ops.one_hot(y_true, num_classes, dtype="float32")
        probs = self._select(probs, num_classes)
        truth = self._select(truth, num_classes)
        rank = len(probs.shape)
        axes = tuple(range(1, rank - 1)) if self.per_image else tuple(range(rank - 1))
        intersection = ops.sum(truth * probs, axis=axes)
        denominator = ops.sum(truth, axis=axes) + ops.sum(probs, axis=axes)
        dice = (2.0 * intersection + self.smooth) / (denominator + self.smooth)
        loss = 1.0 - ops.mean(dice, axis=-1)
        if self.per_image:
            return loss
        # One value per image keeps `call`'s output shape independent of
        # per_image, so reductions and sample weights behave alike.
        return ops.broadcast_to(loss, ops.shape(y_true)[:1])

    def call(self, y_true, y_pred):
        return self.per_image_loss(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update({"smooth": self.smooth, "classes": self.classes, "per_image": self.per_image})
        return config


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class CEDice(_SegmentationLoss):
    """ce_weight * CrossEntropy + dice_weight * SoftDice.

    `call` returns the per-pixel CE map plus each image's Dice term, so the
    default mean over pixels equals the weighted sum of the two losses.
    """

    def __init__(
        self,
        ce_weight=1.0,
        dice_weight=1.0,
        smooth=1.0,
        classes="foreground",
        per_image=False,
        from_logits=False,
        name="ce_dice",
        **kwargs,
    ):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self._dice = SoftDice(smooth=smooth, classes=classes, per_image=per_image, from_logits=from_logits)

    def call(self, y_true, y_pred):
        labels, scores, channels = _prepare(y_true, y_pred)
        ce = -_true_class_log_prob(labels, scores, channels, self.from_logits)
        dice = self._dice.per_image_loss(labels, scores)
        dice = ops.reshape(dice, (-1,) + (1,) * (len(ce.shape) - 1))
        return self.ce_weight * ce + self.dice_weight * dice

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ce_weight": self.ce_weight,
                "dice_weight": self.dice_weight,
                "smooth": self._dice.smooth,
                "classes": self._dice.classes,
                "per_image": self._dice.per_image,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class Focal(_SegmentationLoss):
    """Focal loss -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017).

    alpha: None (no class weighting); a float a, weighting foreground classes
    (ids >= 1) by a and background by 1 - a, as in the binary original; or a
    list with one weight per class (2 entries for a sigmoid output).
    With gamma=0 and alpha=None this is exactly `CrossEntropy`.
    """

    def __init__(self, gamma=2.0, alpha=None, from_logits=False, name="focal", **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0; got {gamma}")
        self.gamma = float(gamma)
        if alpha is None or isinstance(alpha, (int, float)):
            self.alpha = None if alpha is None else float(alpha)
        else:
            self.alpha = [float(a) for a in alpha]

    def _alpha_t(self, y_true, num_classes):
        if isinstance(self.alpha, float):
            return ops.where(ops.greater_equal(y_true, 1), self.alpha, 1.0 - self.alpha)
        if len(self.alpha) != num_classes:
            raise ValueError(f"alpha has {len(self.alpha)} entries but the output has {num_classes} classes")
        weights = ops.convert_to_tensor(self.alpha, dtype="float32")
        return ops.take(weights, y_true, axis=0)

    def call(self, y_true, y_pred):
        y_true, y_pred, channels = _prepare(y_true, y_pred)
        log_p_t = _true_class_log_prob(y_true, y_pred, channels, self.from_logits)
        loss = -log_p_t
        if self.gamma != 0.0:
            # Floored at _EPS rather than 0: unnormalised probabilities can push
            # p_t slightly above 1 (a negative base to a fractional power is
            # NaN), and for gamma < 1 the derivative of x**gamma is infinite
            # at x = 0, which a saturated logit would otherwise reach. The
            # floor changes the loss by at most _EPS**gamma * |log p_t|.
            modulator = ops.power(ops.maximum(1.0 - ops.exp(log_p_t), _EPS), self.gamma)
            loss = modulator * loss
        if self.alpha is not None:
            loss = ops.cast(self._alpha_t(y_true, max(channels, 2)), "float32") * loss
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "alpha": self.alpha})
        return config


# --------------------------------------------------------------------------
# The losses of the comparison networks' papers (UNet++, UNet 3+)
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class BCEDice(CEDice):
    """UNet++'s loss: 0.5 * cross-entropy + (1 - soft Dice).

    The official code (MrGiovanni/UNetPlusPlus, ``bce_dice_loss``) returns
    ``0.5 * BCE - Dice``. This class returns ``0.5 * BCE + (1 - Dice)``: the
    same function shifted by the constant 1, so the gradients and the optimum
    are identical, while the value stays >= 0 and reads 0 at a perfect
    prediction like every other loss of the zoo (and a loss log of negative
    numbers is not mistaken for a bug). The Dice is the official one: smooth
    1, pooled over the whole batch, on the foreground (mitosis) probability.

    Example:
        >>> loss = BCEDice()
        >>> value = loss(np.array([[[1, 0]]]), np.array([[[[0.8], [0.4]]]], "float32"))
    """

    def __init__(
        self,
        ce_weight=0.5,
        dice_weight=1.0,
        smooth=1.0,
        classes="foreground",
        per_image=False,
        from_logits=False,
        name="bce_dice",
        **kwargs,
    ):
        super().__init__(
            ce_weight=ce_weight,
            dice_weight=dice_weight,
            smooth=smooth,
            classes=classes,
            per_image=per_image,
            from_logits=from_logits,
            name=name,
            **kwargs,
        )


# Wang, Simoncelli & Bovik 2003: the weights of the five MS-SSIM scales, finest first.
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# cs and SSIM are raised to fractional powers; a negative value (anti-correlated
# structure) would give NaN, so they are floored at this value first.
_SSIM_FLOOR = 1e-6


def _gaussian_window(size, sigma, channels):
    """(size, size, channels, 1) depthwise kernel of a normalised 2-D Gaussian.

    Centred at (size - 1) / 2 so that even sizes (windows shrunk to a small
    image) stay symmetric.
    """
    coords = ops.arange(size, dtype="float32") - (size - 1) / 2.0
    g = ops.exp(-ops.square(coords) / (2.0 * sigma**2))
    g = g / ops.sum(g)
    window = g[:, None] * g[None, :]
    return ops.tile(window[:, :, None, None], (1, 1, channels, 1))


def _spatial_size(x):
    """Smallest static spatial side of (B, H, W, C), or None when unknown."""
    sides = x.shape[1:3]
    return None if any(s is None for s in sides) else min(sides)


def _ssim_and_cs(x, y, window_size, sigma, value_range):
    """Per-image SSIM and contrast-structure term cs, both (B,), float32.

    Statistics come from a Gaussian window applied with a "valid" depthwise
    convolution (no padding, as in Wang et al.: zero padding would invent
    structure at the borders). The window shrinks to the image when the image
    is smaller than it, as in the UNet 3+ code.
    """
    channels = x.shape[-1]
    side = _spatial_size(x)
    size = window_size if side is None else min(window_size, side)
    c1 = (0.01 * value_range) ** 2
    c2 = (0.03 * value_range) ** 2
    # One depthwise convolution filters all five moment maps at once.
    stacked = ops.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    kernel = _gaussian_window(size, sigma, 5 * channels)
    moments = ops.depthwise_conv(stacked, kernel, strides=1, padding="valid")
    mu_x, mu_y, e_xx, e_yy, e_xy = ops.split(moments, 5, axis=-1)
    var_x = e_xx - ops.square(mu_x)
    var_y = e_yy - ops.square(mu_y)
    cov = e_xy - mu_x * mu_y
    cs_map = (2.0 * cov + c2) / (var_x + var_y + c2)
    luminance = (2.0 * mu_x * mu_y + c1) / (ops.square(mu_x) + ops.square(mu_y) + c1)
    axes = (1, 2, 3)
    return ops.mean(luminance * cs_map, axis=axes), ops.mean(cs_map, axis=axes)


def ssim(x, y, window_size=11, sigma=1.5, value_range=1.0):
    """Single-scale SSIM per image, (B,) float32, of (B, H, W, C) images (Wang et al. 2004).

    Constants K1 = 0.01, K2 = 0.03 of ``value_range`` (1 for probabilities).

    Example:
        >>> x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
        >>> ssim(x, x)   # [1., 1.]
    """
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    y = ops.cast(ops.convert_to_tensor(y), "float32")
    return _ssim_and_cs(x, y, window_size, sigma, value_range)[0]


def ms_ssim_scales(side, max_scales=5, window_size=11):
    """How many MS-SSIM scales an image whose smaller side is ``side`` gets.

    The standard 5 scales need a side of at least ``window_size * 2**4`` = 176
    pixels; mitosis tiles are often 64-128 px. A scale is used only while the
    image at that scale still holds a whole window, so a 64-px tile gets 3
    scales (64, 32, 16), a 256-px one all 5; an image smaller than the window
    gets 1 (with the window shrunk to it). Unknown sizes get ``max_scales``.
    """
    if side is None:
        return max_scales
    scales = 1
    while scales < max_scales and side // 2**scales >= window_size:
        scales += 1
    return scales


def ms_ssim(x, y, max_scales=5, window_size=11, sigma=1.5, value_range=1.0):
    """Multi-scale SSIM per image, (B,) float32 (Wang, Simoncelli & Bovik 2003).

    ``prod_{j < M} cs_j ** w_j * SSIM_M ** w_M`` over M scales, each halving
    the image with 2x2 average pooling. M comes from ``ms_ssim_scales``
    (fewer than 5 on small tiles); the standard weights of the M scales used
    are renormalised to sum to 1, so identical images still score exactly 1.
    cs and SSIM are floored at 1e-6 before the fractional powers (negative
    values only arise for anti-correlated images and would give NaN).

    Example:
        >>> x = np.random.default_rng(0).random((2, 64, 64, 1)).astype("float32")
        >>> ms_ssim(x, x)   # [1., 1.]
    """
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    y = ops.cast(ops.convert_to_tensor(y), "float32")
    if not 1 <= max_scales <= len(_MS_SSIM_WEIGHTS):
        raise ValueError(f"max_scales must be in 1..{len(_MS_SSIM_WEIGHTS)}; got {max_scales}")
    scales = ms_ssim_scales(_spatial_size(x), max_scales, window_size)
    weights = _MS_SSIM_WEIGHTS[:scales]
    total = sum(weights)
    result = None
    for scale in range(scales):
        full, cs = _ssim_and_cs(x, y, window_size, sigma, value_range)
        value = full if scale == scales - 1 else cs
        term = ops.power(ops.maximum(value, _SSIM_FLOOR), weights[scale] / total)
        result = term if result is None else result * term
        if scale < scales - 1:
            x = ops.average_pool(x, 2, strides=2, padding="valid")
            y = ops.average_pool(y, 2, strides=2, padding="valid")
    return result


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class Hybrid(_SegmentationLoss):
    """UNet 3+'s hybrid loss: focal + (1 - MS-SSIM) + IoU loss (Huang et al. 2020, eq. 2-4).

    - focal: `Focal` (``gamma``, ``alpha``) on the class probabilities, per pixel;
    - MS-SSIM: `ms_ssim` between the foreground (mitosis) probability map and
      the binary mask, per image, with the window and scale rules given there;
    - IoU: ``1 - (sum(t p) + s) / (sum(t) + sum(p) - sum(t p) + s)`` on the
      foreground probability, per image. The official code has no ``s``,
      which is 0 / 0 on a tile without mitosis predicted empty; ``s`` =
      ``iou_smooth`` = 1 keeps it finite (and pushes such predictions to 0).

    The foreground probability is p for a sigmoid output and 1 - p(background)
    (the sum of classes 1..C-1) for a softmax one. `call` returns the focal
    map plus both per-image terms, so the default mean over pixels is
    ``focal_weight * focal + ssim_weight * (1 - MS-SSIM) + iou_weight * IoU``.

    Example:
        >>> loss = Hybrid()
        >>> value = loss(np.zeros((2, 64, 64)), np.full((2, 64, 64, 1), 0.1, "float32"))
    """

    def __init__(
        self,
        gamma=2.0,
        alpha=None,
        focal_weight=1.0,
        ssim_weight=1.0,
        iou_weight=1.0,
        iou_smooth=1.0,
        max_scales=5,
        window_size=11,
        sigma=1.5,
        from_logits=False,
        name="hybrid",
        **kwargs,
    ):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if iou_smooth < 0:
            raise ValueError(f"iou_smooth must be >= 0; got {iou_smooth}")
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size must be a positive integer; got {window_size!r}")
        if not 1 <= max_scales <= len(_MS_SSIM_WEIGHTS):
            raise ValueError(f"max_scales must be in 1..{len(_MS_SSIM_WEIGHTS)}; got {max_scales}")
        self._focal = Focal(gamma=gamma, alpha=alpha, from_logits=from_logits)
        self.focal_weight = float(focal_weight)
        self.ssim_weight = float(ssim_weight)
        self.iou_weight = float(iou_weight)
        self.iou_smooth = float(iou_smooth)
        self.max_scales = int(max_scales)
        self.window_size = int(window_size)
        self.sigma = float(sigma)

    def per_image_terms(self, y_true, y_pred):
        """(1 - MS-SSIM, IoU loss), each (B,), on the foreground probability."""
        labels, scores, channels = _prepare(y_true, y_pred)
        probs = _class_probs(scores, channels, self.from_logits)
        foreground = ops.sum(probs[..., 1:], axis=-1)[..., None]
        truth = ops.cast(ops.greater_equal(labels, 1), "float32")[..., None]
        ssim_loss = 1.0 - ms_ssim(foreground, truth, self.max_scales, self.window_size, self.sigma)
        axes = tuple(range(1, len(truth.shape)))
        intersection = ops.sum(truth * foreground, axis=axes)
        union = ops.sum(truth, axis=axes) + ops.sum(foreground, axis=axes) - intersection
        iou_loss = 1.0 - (intersection + self.iou_smooth) / (union + self.iou_smooth)
        return ssim_loss, iou_loss

    def call(self, y_true, y_pred):
        labels, scores, _ = _prepare(y_true, y_pred)
        focal = self._focal.call(labels, scores)
        ssim_loss, iou_loss = self.per_image_terms(labels, scores)
        per_image = self.ssim_weight * ssim_loss + self.iou_weight * iou_loss
        per_image = ops.reshape(per_image, (-1,) + (1,) * (len(focal.shape) - 1))
        return self.focal_weight * focal + per_image

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gamma": self._focal.gamma,
                "alpha": self._focal.alpha,
                "focal_weight": self.focal_weight,
                "ssim_weight": self.ssim_weight,
                "iou_weight": self.iou_weight,
                "iou_smooth": self.iou_smooth,
                "max_scales": self.max_scales,
                "window_size": self.window_size,
                "sigma": self.sigma,
            }
        )
        return config


_LOSSES = {
    "ce": CrossEntropy,
    "dice": SoftDice,
    "ce_dice": CEDice,
    "focal": Focal,
    "bce_dice": BCEDice,
    "hybrid": Hybrid,
}
LOSS_NAMES = tuple(_LOSSES)


def get_loss(name_or_loss, from_logits=False):
    """A loss from its short name ("ce", "dice", "ce_dice", "focal", "bce_dice", "hybrid").

    A `keras.losses.Loss` instance is returned unchanged (its own
    `from_logits` stands).
    """
    if isinstance(name_or_loss, keras.losses.Loss):
        return name_or_loss
    if not isinstance(name_or_loss, str):
        raise TypeError(
            f"get_loss expects a loss name or a keras.losses.Loss instance; got {type(name_or_loss).__name__}"
        )
    key = name_or_loss.strip().lower().replace("-", "_")
    if key not in _LOSSES:
        raise ValueError(f"Unknown loss {name_or_loss!r}; valid names are {', '.join(LOSS_NAMES)}")
    return _LOSSES[key](from_logits=from_logits)
