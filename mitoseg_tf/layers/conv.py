"""Convolution blocks shared by the U-Net family.

Functions that take and return tensors (functional API), each naming its layers
from ``prefix`` so that a model's layer names are deterministic and readable
(``enc2_conv1``, ``enc2_bn1``, ``enc2_relu1``...).
"""

import math

import keras

from mitoseg_tf.layers.norm import BatchNorm, GroupNorm

KERNEL_INIT = "he_normal"
NORMS = ("batch", "group", None)
# GroupNorm groups (fewer where a layer has fewer channels than this, e.g. tiny test widths).
GROUPS = 8


def check_norm(name, norm):
    """One clear error for a ``norm`` that no block understands."""
    if norm not in NORMS:
        raise ValueError(
            f"{name}: norm must be 'batch' (BatchNorm), 'group' (GroupNorm, {GROUPS} groups) or None; got {norm!r}."
        )


def normalization(x, norm, prefix, index=""):
    """Apply the chosen normalisation: ``<prefix>_bn<index>``, ``<prefix>_gn<index>`` or nothing.

    GroupNorm normalises each image by its own statistics, so unlike BatchNorm's
    moving averages it cannot carry the training set's colour statistics to a
    scanner whose activations sit elsewhere (the mitosis recipe's problem; see
    docs/RESULTS.md). Both are the zoo's fast versions of Keras' layers
    (``layers.norm``): under mixed bfloat16 a GroupNorm U-Net trains at 0.90x
    the speed of the BatchNorm one on CPU, where Keras' own GroupNormalization
    managed 0.44x (benchmarks/README.md).
    """
    if norm == "batch":
        return BatchNorm(name=f"{prefix}_bn{index}")(x)
    if norm == "group":
        groups = math.gcd(GROUPS, x.shape[-1])
        return GroupNorm(groups=groups, epsilon=1e-5, name=f"{prefix}_gn{index}")(x)
    return x


def conv_bn_act(x, filters, prefix, *, kernel_size=3, strides=1, norm="batch", activation="relu", index=""):
    """Conv -> (normalisation) -> activation. The conv has no bias when a norm follows (its beta replaces it)."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=norm is None,
        kernel_initializer=KERNEL_INIT,
        name=f"{prefix}_conv{index}",
    )(x)
    x = normalization(x, norm, prefix, index)
    if activation:
        x = keras.layers.Activation(activation, name=f"{prefix}_{activation}{index}")(x)
    return x


def double_conv(x, filters, prefix, *, norm="batch"):
    """The U-Net unit: two 3x3 conv -> (norm) -> ReLU."""
    x = conv_bn_act(x, filters, prefix, norm=norm, index=1)
    return conv_bn_act(x, filters, prefix, norm=norm, index=2)


def up_conv(x, filters, prefix, *, norm="batch"):
    """U-Net "up-conv": nearest x2 upsampling then a 2x2 conv (the common Keras U-Net form)."""
    x = keras.layers.UpSampling2D(2, name=f"{prefix}_upsample")(x)
    return conv_bn_act(x, filters, f"{prefix}_up", kernel_size=2, norm=norm)
