"""Convolution blocks shared by the U-Net family.

Functions that take and return tensors (functional API), each naming its layers
from ``prefix`` so that a model's layer names are deterministic and readable
(``enc2_conv1``, ``enc2_bn1``, ``enc2_relu1``...).
"""

import keras

from mitoseg_tf.layers.norm import BatchNorm

KERNEL_INIT = "he_normal"


def conv_bn_act(x, filters, prefix, *, kernel_size=3, strides=1, batch_norm=True, activation="relu", index=""):
    """Conv -> (BatchNorm) -> activation. The conv has no bias when BN follows (BN's beta replaces it)."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=not batch_norm,
        kernel_initializer=KERNEL_INIT,
        name=f"{prefix}_conv{index}",
    )(x)
    if batch_norm:
        x = BatchNorm(name=f"{prefix}_bn{index}")(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{prefix}_{activation}{index}")(x)
    return x


def double_conv(x, filters, prefix, *, batch_norm=True):
    """The U-Net unit: two 3x3 conv -> (BN) -> ReLU."""
    x = conv_bn_act(x, filters, prefix, batch_norm=batch_norm, index=1)
    return conv_bn_act(x, filters, prefix, batch_norm=batch_norm, index=2)


def up_conv(x, filters, prefix, *, batch_norm=True):
    """U-Net "up-conv": nearest x2 upsampling then a 2x2 conv (the common Keras U-Net form)."""
    x = keras.layers.UpSampling2D(2, name=f"{prefix}_upsample")(x)
    return conv_bn_act(x, filters, f"{prefix}_up", kernel_size=2, batch_norm=batch_norm)
