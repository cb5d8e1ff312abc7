"""Res-UNet: the residual U-Net the MCSA-Unet paper compares with (its ref. [13]).

The paper does not say which residual U-Net it ran, so two are offered:

- ``variant="zhang2018"`` (default): Zhang, Liu & Wang, "Road extraction by
  deep residual U-Net", IEEE GRSL 2018 (arXiv:1711.10684), the fully
  specified and most copied "ResUNet". Three downsamplings, pre-activation
  residual units (He et al. 2016, arXiv:1603.05027)
  ``BN -> ReLU -> Conv3x3(c, stride s) -> BN -> ReLU -> Conv3x3(c)`` added to a
  ``Conv1x1(c, stride s) -> BN`` projection of the unit's input. Strided
  convolutions downsample (no pooling); the decoder is nearest x2 upsampling,
  concatenation with the skip and one residual unit per level.
- ``variant="residual_5level"``: the "weighted Res-UNet" style (Xiao et al.
  2018): the zoo's 5-level U-Net whose double convs are post-activation
  residual blocks ``Conv-BN-ReLU-Conv-BN (+ shortcut) -> ReLU``; same pooling,
  up-conv and skips as ``build_unet``.

Parameter count of the default at f = 64: 8.23 M. Zhang et al. report 7.8 M,
which is what the twelve 3x3 convolutions of their Table 1 add up to
(7.78 M); the 1x1 projection shortcuts that every unit needs because it
changes the width (0.43 M) are not in that figure.
"""

import keras

from mitoseg_tf.layers.conv import KERNEL_INIT, check_norm, conv_bn_act, normalization
from mitoseg_tf.models.common import check_common_args, image_input, segmentation_head, unet_decoder

VARIANTS = ("zhang2018", "residual_5level")
_DEFAULT_DEPTH = {"zhang2018": 3, "residual_5level": 4}


def _conv(x, filters, name, *, kernel_size=3, strides=1, use_bias=True):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=KERNEL_INIT,
        name=name,
    )(x)


def _projection(x, filters, prefix, *, strides, norm):
    """``Conv1x1(stride) -> BN`` shortcut, used whenever width or resolution changes.

    A strided 1x1 conv reads every ``strides``-th pixel, so it is computed as
    that subsampling (a 1x1 max-pool with the stride, which only selects)
    followed by a 1x1 conv: the same numbers and the same weights. The strided
    1x1 conv itself crashes TensorFlow 2.21's oneDNN CPU kernels in training
    ("malloc(): unaligned tcache chunk", e.g. 4 channels at 64x64).
    """
    if strides > 1:
        x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{prefix}_shortcut_subsample")(x)
    x = _conv(x, filters, f"{prefix}_shortcut_conv", kernel_size=1, use_bias=norm is None)
    return normalization(x, norm, f"{prefix}_shortcut")


def _norm_relu(x, name, index, norm):
    x = normalization(x, norm, name, index)
    return keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)


def preact_residual_unit(x, filters, prefix, *, strides=1, norm="batch"):
    """Zhang et al.'s residual unit: ``(BN-ReLU-Conv3x3) x 2`` plus a projection shortcut.

    Pre-activation: the sum is not passed through a ReLU, the next unit's BN
    and ReLU come first, so the identity path runs unchanged from input to
    output. The convs have no bias when BN follows them (BN's beta replaces
    it); the second conv feeds the sum, whose next consumer is again a BN.
    """
    shortcut = _projection(x, filters, prefix, strides=strides, norm=norm)
    y = _norm_relu(x, prefix, 1, norm)
    y = _conv(y, filters, f"{prefix}_conv1", strides=strides, use_bias=norm is None)
    y = _norm_relu(y, prefix, 2, norm)
    y = _conv(y, filters, f"{prefix}_conv2", use_bias=norm is None)
    return keras.layers.Add(name=f"{prefix}_add")([y, shortcut])


def _stem(x, filters, prefix, *, norm):
    """Zhang et al.'s first level: Conv-BN-ReLU-Conv plus a projection of the image.

    The image itself is not activated (a BN-ReLU on RGB would throw half of it
    away), hence a different first unit.
    """
    shortcut = _projection(x, filters, prefix, strides=1, norm=norm)
    y = _conv(x, filters, f"{prefix}_conv1", use_bias=norm is None)
    y = _norm_relu(y, prefix, 1, norm)
    y = _conv(y, filters, f"{prefix}_conv2", use_bias=norm is None)
    return keras.layers.Add(name=f"{prefix}_add")([y, shortcut])


def postact_residual_block(x, filters, prefix, *, norm="batch"):
    """``Conv-BN-ReLU-Conv-BN`` added to the input (projected when widths differ), then ReLU."""
    if x.shape[-1] == filters:
        shortcut = x
    else:
        shortcut = _projection(x, filters, prefix, strides=1, norm=norm)
    y = conv_bn_act(x, filters, prefix, norm=norm, index=1)
    y = conv_bn_act(y, filters, prefix, norm=norm, activation=None, index=2)
    y = keras.layers.Add(name=f"{prefix}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{prefix}_out_relu")(y)


def _zhang(x, base_filters, depth, norm, dropout):
    skips = [_stem(x, base_filters, "enc1", norm=norm)]
    for level in range(1, depth):
        skips.append(preact_residual_unit(skips[-1], base_filters * 2**level, f"enc{level + 1}", strides=2, norm=norm))
    x = preact_residual_unit(skips[-1], base_filters * 2**depth, "bridge", strides=2, norm=norm)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bridge_dropout")(x)
    for level in reversed(range(depth)):
        prefix = f"dec{level + 1}"
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}_upsample")(x)
        x = keras.layers.Concatenate(name=f"{prefix}_concat")([skips[level], x])
        x = preact_residual_unit(x, base_filters * 2**level, prefix, norm=norm)
    # The last unit's sum was never normalised or activated (pre-activation
    # leaves that to the next unit); Zhang et al.'s 1x1 head reads it directly.
    return x


def _residual_5level(x, base_filters, depth, norm, dropout):
    skips = []
    for level in range(depth):
        prefix = f"enc{level + 1}"
        x = postact_residual_block(x, base_filters * 2**level, prefix, norm=norm)
        if dropout and level == depth - 1:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
    x = postact_residual_block(x, base_filters * 2**depth, "bottleneck", norm=norm)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)
    return unet_decoder(x, skips, base_filters, postact_residual_block, norm=norm)


def build_res_unet(
    input_shape=(256, 256, 3),
    num_classes=2,
    base_filters=64,
    variant="zhang2018",
    depth=None,
    norm="batch",
    dropout=0.0,
    output_activation="softmax",
    name="res_unet",
):
    """Build a residual U-Net.

    Args:
        input_shape: (H, W, C); H and W multiples of 2**depth, or None.
        num_classes: output channels (2 = background / mitosis with softmax).
        base_filters: width of the first level; level k has base_filters * 2**k
            (64 in both papers).
        variant: ``"zhang2018"`` (pre-activation units, strided downsampling,
            three downsamplings) or ``"residual_5level"`` (post-activation
            residual blocks in the zoo's 5-level U-Net).
        depth: number of downsamplings; None takes the variant's own (3 or 4).
        norm: "batch" in every unit (both references use it), "group" or None.
        dropout: rate after the bridge (and, in the 5-level variant, after
            the deepest encoder level too); neither reference uses dropout.
        output_activation: "softmax", "sigmoid" or None (logits); float32 always.

    Example:
        >>> model = build_res_unet((64, 64, 3), base_filters=8)
        >>> model.output_shape
        (None, 64, 64, 2)
    """
    if variant not in VARIANTS:
        raise ValueError(f"{name}: variant must be one of {VARIANTS}; got {variant!r}.")
    depth = _DEFAULT_DEPTH[variant] if depth is None else depth
    multiple = check_common_args(name, input_shape, num_classes, base_filters, depth, output_activation, dropout)
    check_norm(name, norm)
    inputs, x = image_input(input_shape, name, multiple)
    body = _zhang if variant == "zhang2018" else _residual_5level
    x = body(x, base_filters, depth, norm, dropout)
    outputs = segmentation_head(x, num_classes, output_activation)
    return keras.Model(inputs, outputs, name=name)
