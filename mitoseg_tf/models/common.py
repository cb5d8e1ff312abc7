"""Pieces every zoo network shares: input validation, the input stem and the output head."""

import keras

from mitoseg_tf.layers.checks import InputSizeCheck
from mitoseg_tf.layers.conv import up_conv
from mitoseg_tf.models.outputs import PRIMARY_OUTPUT

OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", None)


def check_common_args(name, input_shape, num_classes, base_filters, depth, output_activation, dropout=0.0):
    """Validate the arguments every network takes; one clear ValueError per problem."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"{name}: input_shape must be (height, width, channels), e.g. (256, 256, 3) or "
            f"(None, None, 3); got {input_shape!r}."
        )
    height, width, channels = input_shape
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{name}: the channel count of input_shape must be a positive integer; got {channels!r}.")
    multiple = 2**depth
    for side, value in (("height", height), ("width", width)):
        if value is None:
            continue
        if not isinstance(value, int) or value < multiple or value % multiple:
            raise ValueError(
                f"{name} with depth={depth} needs an input {side} that is a positive multiple of "
                f"{multiple} (or None for any such size); got {value!r}."
            )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive integer; got {num_classes!r}.")
    if output_activation == "softmax" and num_classes < 2:
        raise ValueError(f"{name}: a softmax output needs num_classes >= 2; use output_activation='sigmoid' for 1.")
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"{name}: output_activation must be one of {OUTPUT_ACTIVATIONS}; got {output_activation!r}.")
    if not isinstance(base_filters, int) or base_filters < 1:
        raise ValueError(f"{name}: base_filters must be a positive integer; got {base_filters!r}.")
    if not isinstance(depth, int) or not 1 <= depth <= 6:
        raise ValueError(f"{name}: depth (number of downsamplings) must be an integer in 1..6; got {depth!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1); got {dropout!r}.")
    return multiple


def image_input(input_shape, name, multiple):
    """Input tensor plus the in-graph preprocessing every zoo model shares.

    Models take RGB in [0, 255] (uint8 images cast to float) and scale to [0, 1]
    themselves, so that training, evaluation and exported models all see the
    same normalisation.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(multiple, model_name=name, name="input_size_check")(inputs)
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    return inputs, x


def segmentation_head(x, num_classes, output_activation, name=PRIMARY_OUTPUT, kernel_size=1):
    """Final conv to class scores, kept in float32 under any precision policy.

    The output layer is always an Activation named ``name`` whose activation
    (softmax, sigmoid or linear = logits) tells losses whether they get logits.
    """
    x = keras.layers.Conv2D(num_classes, kernel_size, padding="same", dtype="float32", name=f"{name}_logits")(x)
    return keras.layers.Activation(output_activation or "linear", dtype="float32", name=name)(x)


def unet_decoder(x, skips, base_filters, block, *, norm):
    """The U-Net expanding path: per level, up-conv, concat ``[skip, up]``, then ``block``.

    ``block(x, filters, prefix, norm=...)`` is the level's unit (a double
    conv for U-Net, a residual block for the 5-level Res-UNet), so networks that
    differ only in their unit share one decoder.
    """
    for level in reversed(range(len(skips))):
        prefix = f"dec{level + 1}"
        filters = base_filters * 2**level
        x = up_conv(x, filters, prefix, norm=norm)
        x = keras.layers.Concatenate(name=f"{prefix}_concat")([skips[level], x])
        x = block(x, filters, prefix, norm=norm)
    return x
