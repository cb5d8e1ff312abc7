"""Building blocks of the zoo (Keras 3, backend-agnostic)."""

from mitoseg_tf.layers.attention import CBAM, CSA, ChannelAttention, SpatialAttention
from mitoseg_tf.layers.checks import InputSizeCheck
from mitoseg_tf.layers.conv import NORMS, conv_bn_act, double_conv, normalization, up_conv
from mitoseg_tf.layers.heads import MapAverage, TileGate
from mitoseg_tf.layers.norm import BatchNorm
from mitoseg_tf.layers.upsampling import BilinearUpSampling2D

__all__ = [
    "BatchNorm",
    "BilinearUpSampling2D",
    "CBAM",
    "CSA",
    "ChannelAttention",
    "InputSizeCheck",
    "NORMS",
    "MapAverage",
    "SpatialAttention",
    "TileGate",
    "conv_bn_act",
    "double_conv",
    "normalization",
    "up_conv",
]
