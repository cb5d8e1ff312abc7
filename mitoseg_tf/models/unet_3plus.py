"""UNet 3+: full-scale skip connections, full-scale deep supervision and the
classification-guided module (CGM).

Huang, Lin, Tong et al., "UNet 3+: A Full-Scale Connected UNet for Medical
Image Segmentation", ICASSP 2020 (arXiv:2004.08790). Built as the official
code (ZJUGiveLab/UNet-Version, models/UNet_3Plus.py) builds it:

- encoder h1..h5: (Conv3x3 -> BN -> ReLU) x 2 at widths f, 2f, 4f, 8f, 16f,
  2x2 max-pooling between levels; hd5 = h5;
- decoder stage hd_d, d = 4..1, from all five scales: shallower encoder maps
  h_s (s < d) max-pooled by 2^(d-s), the same-scale h_d as is, deeper decoder
  maps hd_s (s > d) bilinearly upsampled by 2^(s-d); each through
  Conv3x3(``skip_filters`` = 64) -> BN -> ReLU, concatenated (5 x 64 = 320)
  and fused by Conv3x3(320) -> BN -> ReLU;
- output: Conv3x3 -> classes on hd1 (``mask``); with deep supervision also on
  hd2..hd5, bilinearly upsampled to full size (``mask_hd2`` ... ``mask_hd5``).

The CGM, done as the paper describes it rather than as the official file
does (which gates logits before the sigmoid and never returns the class
output): on hd5, Dropout(0.5) -> Conv1x1(1) -> global max pool -> sigmoid is
``cls``, the probability that the tile contains a mitosis, trained with BCE
against "the mask has a mitosis pixel" (``compile_model`` does that for any
output named ``cls``). One logit instead of the official two sigmoid
channels followed by an argmax: for a yes/no decision they carry the same
information, and one sigmoid is a proper probability.

The gate (``cgm_gate=True``) acts at inference only, on the maps after their
activation: a tile whose ``cls`` is below ``cgm_threshold`` gets the
background-only map (foreground probabilities 0, background 1, still a
distribution), an accepted tile keeps its map unchanged. In training the maps
pass through ungated, so the segmentation loss trains the decoder on every
tile and the classification loss trains the CGM; gating during training
would only stop the gradient of rejected tiles.

At f = 64 the network has 26.98 M parameters (27.02 M with deep supervision
and the CGM); the paper and the official code give 26.97 M (27.0 M).
"""

import keras

from mitoseg_tf.layers.conv import KERNEL_INIT, check_norm, conv_bn_act, double_conv
from mitoseg_tf.layers.heads import TileGate
from mitoseg_tf.layers.upsampling import BilinearUpSampling2D
from mitoseg_tf.models.common import check_common_args, image_input

_LEVELS = 5


def _aggregate(stage, encoders, decoders, skip_filters, norm):
    """Decoder stage ``hd{stage}`` from all five scales (full-scale skip connections)."""
    parts = []
    for source in range(1, _LEVELS + 1):
        if source <= stage:
            x, tag = encoders[source], f"h{source}"
            prefix = f"hd{stage}_from_{tag}"
            if source < stage:
                factor = 2 ** (stage - source)
                x = keras.layers.MaxPooling2D(factor, strides=factor, name=f"{prefix}_pool")(x)
        else:
            x, tag = decoders[source], f"hd{source}"
            prefix = f"hd{stage}_from_{tag}"
            factor = 2 ** (source - stage)
            x = BilinearUpSampling2D(factor, name=f"{prefix}_upsample")(x)
        parts.append(conv_bn_act(x, skip_filters, prefix, norm=norm))
    x = keras.layers.Concatenate(name=f"hd{stage}_concat")(parts)
    return conv_bn_act(x, skip_filters * _LEVELS, f"hd{stage}_fuse", norm=norm)


def _map(x, stage, num_classes, output_activation, output_name):
    """Conv3x3 to class scores on hd{stage}, upsampled to full size, then the activation (all float32)."""
    x = keras.layers.Conv2D(
        num_classes, 3, padding="same", kernel_initializer=KERNEL_INIT, dtype="float32", name=f"head_hd{stage}"
    )(x)
    if stage > 1:
        x = BilinearUpSampling2D(2 ** (stage - 1), dtype="float32", name=f"head_hd{stage}_upsample")(x)
    return keras.layers.Activation(output_activation or "linear", dtype="float32", name=output_name)(x)


def build_unet_3plus(
    input_shape=(256, 256, 3),
    num_classes=2,
    base_filters=64,
    skip_filters=64,
    deep_supervision=True,
    cgm=True,
    cgm_gate=True,
    cgm_threshold=0.5,
    cgm_dropout=0.5,
    norm="batch",
    output_activation="softmax",
    name="unet_3plus",
):
    """Build UNet 3+ (defaults: the official network with deep supervision and CGM).

    Args:
        input_shape: (H, W, C); H and W multiples of 16, or None.
        num_classes: output channels (2 = background / mitosis with softmax).
        base_filters: width of level 1; level k has base_filters * 2**(k-1) (64 officially).
        skip_filters: channels each of the five scales contributes to a decoder
            stage (64 officially); decoder stages have 5 x skip_filters.
        deep_supervision: also output the maps of hd2..hd5 (``mask_hd2`` ...).
        cgm: add the classification-guided module's ``cls`` output (B, 1).
        cgm_gate: with ``cgm``, gate every map by the tile decision at
            inference (see ``TileGate``); needs a softmax or sigmoid output.
        cgm_threshold: ``cls`` probability from which a tile counts as positive.
        cgm_dropout: dropout before the CGM's 1x1 conv (0.5 officially).
        norm: "batch" after every conv (the official code has it), "group" or None.
        output_activation: "softmax", "sigmoid" or None (logits); float32 always.

    Example:
        >>> model = build_unet_3plus((64, 64, 3), base_filters=8, skip_filters=8)
        >>> model.output_names   # mask, mask_hd2 ... mask_hd5, cls
    """
    multiple = check_common_args(name, input_shape, num_classes, base_filters, 4, output_activation, cgm_dropout)
    check_norm(name, norm)
    if not isinstance(skip_filters, int) or skip_filters < 1:
        raise ValueError(f"{name}: skip_filters must be a positive integer; got {skip_filters!r}.")
    gate = cgm and cgm_gate
    if gate and output_activation is None:
        raise ValueError(
            f"{name}: the CGM gate acts on probability maps; use output_activation='softmax' or "
            "'sigmoid', or cgm_gate=False and gate the logits yourself."
        )
    if not 0.0 <= cgm_threshold <= 1.0:
        raise ValueError(f"{name}: cgm_threshold must be in [0, 1]; got {cgm_threshold!r}.")
    inputs, x = image_input(input_shape, name, multiple)

    encoders = {}
    for level in range(1, _LEVELS + 1):
        if level > 1:
            x = keras.layers.MaxPooling2D(2, name=f"enc{level - 1}_pool")(x)
        x = double_conv(x, base_filters * 2 ** (level - 1), f"enc{level}", norm=norm)
        encoders[level] = x
    decoders = {_LEVELS: encoders[_LEVELS]}
    for stage in range(_LEVELS - 1, 0, -1):
        decoders[stage] = _aggregate(stage, encoders, decoders, skip_filters, norm)

    probability = None
    if cgm:
        x = decoders[_LEVELS]
        if cgm_dropout:
            x = keras.layers.Dropout(cgm_dropout, name="cgm_dropout")(x)
        x = keras.layers.Conv2D(1, 1, kernel_initializer=KERNEL_INIT, dtype="float32", name="cgm_conv")(x)
        x = keras.layers.GlobalMaxPooling2D(dtype="float32", name="cgm_pool")(x)
        probability = keras.layers.Activation("sigmoid", dtype="float32", name="cls")(x)

    stages = range(1, _LEVELS + 1) if deep_supervision else (1,)
    maps = []
    for stage in stages:
        output_name = "mask" if stage == 1 else f"mask_hd{stage}"
        if not gate:
            maps.append(_map(decoders[stage], stage, num_classes, output_activation, output_name))
            continue
        ungated = _map(decoders[stage], stage, num_classes, output_activation, f"{output_name}_ungated")
        gated = TileGate(cgm_threshold, output_activation, dtype="float32", name=output_name)([ungated, probability])
        maps.append(gated)
    outputs = maps + ([probability] if cgm else [])
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=name)
