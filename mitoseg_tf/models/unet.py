"""U-Net and MCSA-Unet from one builder, so the paper's Table 1 ablation is exact.

- U-Net: Ronneberger, Fischer & Brox, MICCAI 2015 (the common Keras form:
  same padding, he_normal, up-conv = upsample + 2x2 conv, dropout at the end
  of the contracting path).
- MCSA-Unet: Liu, Yan et al., Journal of Optoelectronics · Laser 34 (2023):
  every encoder level's double conv output ``F1`` goes through the CSA block
  ``F1 + CBAM(F1)`` before it is used as skip and pooled.

Ablation switches: ``channel_attention`` (CA), ``spatial_attention`` (SA),
``residual`` (Res). With attention on, the residual is the paper's identity
path around the attention (``F1 + A_FS``). With both attentions off,
``F1 + F1`` would only rescale the features, so the "+Res" row is built as a
residual unit instead: ``F1 + Conv1x1(level input)`` (the paper reports that
row identical to its Res-Unet, which is this kind of block).
"""

import keras

from mitoseg_tf.layers.attention import CSA
from mitoseg_tf.layers.conv import check_norm, conv_bn_act, double_conv
from mitoseg_tf.models.common import check_common_args, image_input, segmentation_head, unet_decoder


def _encoder_level(x, filters, prefix, *, norm, channel_attention, spatial_attention, residual, attention):
    level_input = x
    x = double_conv(x, filters, prefix, norm=norm)
    if channel_attention or spatial_attention:
        x = CSA(
            residual=residual,
            channel=channel_attention,
            spatial=spatial_attention,
            name=f"{prefix}_csa",
            **attention,
        )(x)
    elif residual:
        shortcut = conv_bn_act(level_input, filters, f"{prefix}_shortcut", kernel_size=1, norm=norm, activation=None)
        x = keras.layers.Add(name=f"{prefix}_res_add")([x, shortcut])
    return x


def build_unet(
    input_shape=(256, 256, 3),
    num_classes=2,
    base_filters=64,
    depth=4,
    norm="batch",
    dropout=0.5,
    channel_attention=False,
    spatial_attention=False,
    residual=False,
    attention_in_bottleneck=False,
    attention_variant="cbam",
    reduction=16,
    spatial_kernel=7,
    spatial_bn=True,
    output_activation="softmax",
    name="unet",
):
    """Build a U-Net, optionally with the MCSA encoder (CA / SA / Res switches).

    Args:
        input_shape: (H, W, C); H and W multiples of 2**depth, or None.
        num_classes: output channels (2 = background / mitosis with softmax).
        base_filters: width of the first level; level k has base_filters * 2**k.
        depth: number of downsamplings (4 in the paper: 5 levels).
        norm: normalisation after every conv: "batch" (the default: the paper
            does not say, and BN makes short CPU schedules train reliably),
            "group" (GroupNorm, per-image statistics) or None (the reference
            Keras U-Net).
        dropout: rate after the deepest encoder level and the bottleneck, as in
            the reference Keras U-Net (0 disables).
        channel_attention, spatial_attention, residual: the CSA switches.
        attention_in_bottleneck: also apply CSA to the bottleneck (unstated in the paper).
        attention_variant: "cbam" (Woo et al.) or "paper" (eq. 2 as printed).
        reduction, spatial_kernel, spatial_bn: CBAM options.
        output_activation: "softmax", "sigmoid" or None (logits); float32 always.

    Example:
        >>> model = build_unet((64, 64, 3), base_filters=8, channel_attention=True,
        ...                    spatial_attention=True, residual=True, name="mcsa_unet")
        >>> model.output_shape
        (None, 64, 64, 2)
    """
    multiple = check_common_args(name, input_shape, num_classes, base_filters, depth, output_activation, dropout)
    check_norm(name, norm)
    attention = dict(reduction=reduction, kernel_size=spatial_kernel, spatial_bn=spatial_bn, variant=attention_variant)
    switches = dict(
        norm=norm,
        channel_attention=channel_attention,
        spatial_attention=spatial_attention,
        residual=residual,
        attention=attention,
    )
    inputs, x = image_input(input_shape, name, multiple)

    skips = []
    for level in range(depth):
        prefix = f"enc{level + 1}"
        x = _encoder_level(x, base_filters * 2**level, prefix, **switches)
        if dropout and level == depth - 1:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)

    bottleneck_switches = dict(switches)
    if not attention_in_bottleneck:
        bottleneck_switches.update(channel_attention=False, spatial_attention=False, residual=False)
    x = _encoder_level(x, base_filters * 2**depth, "bottleneck", **bottleneck_switches)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)

    x = unet_decoder(x, skips, base_filters, double_conv, norm=norm)

    outputs = segmentation_head(x, num_classes, output_activation)
    return keras.Model(inputs, outputs, name=name)
