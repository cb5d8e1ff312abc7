"""Channel attention, spatial attention, CBAM and the paper's CSA block.

CBAM: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.
CSA: Liu et al. 2023 (MCSA-Unet), eqs. 1-6: ``F1' = F1 + A_FS`` where ``A_FS`` is
CBAM applied to the encoder features ``F1``.

Every layer here uses only ``keras.layers`` / ``keras.ops`` so it runs on the
TensorFlow, JAX and PyTorch backends, and follows the dtype policy: under
``mixed_bfloat16`` the gates are computed in bfloat16 like the convolutions.
"""

import keras
from keras import ops

from mitoseg_tf.layers.norm import BatchNorm

_PACKAGE = "mitoseg_tf"


def _mean(x, axis, keepdims=False):
    """``ops.mean`` without upcasting the whole tensor.

    ``ops.mean`` casts a bfloat16 tensor to float32 first: a full-size copy
    forward and three full-size float32 ops in its gradient, which made the
    pooling cost as much as CBAM's convolution on CPU. The backends already
    accumulate a low-precision sum in float32 and round only the result, and
    dividing by a power-of-two count is exact, so this gives the same bfloat16
    mean as ``ops.mean`` up to float32 summation order (one more rounding for
    other counts). In float32 it is ``ops.mean``.
    """
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    total = ops.cast(ops.sum(x, axis=axis, keepdims=keepdims), "float32")
    count = 1.0
    for a in axis:
        count = count * ops.cast(ops.shape(x)[a], "float32")
    return ops.cast(total / count, x.dtype)


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ChannelAttention(keras.layers.Layer):
    """CBAM channel gate: ``x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    One MLP (``Dense(C // reduction, relu) -> Dense(C)``) is shared by the two
    pooled descriptors, as in the official CBAM code. The hidden width is at
    least ``min_hidden`` so that narrow layers (C < reduction) keep a gate.

    Example:
        >>> layer = ChannelAttention(reduction=16)
        >>> y = layer(keras.ops.ones((1, 8, 8, 32)))   # same shape as the input
    """

    def __init__(self, reduction=16, min_hidden=1, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("reduction", reduction)
        _check_positive_int("min_hidden", min_hidden)
        self.reduction = reduction
        self.min_hidden = min_hidden

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("ChannelAttention needs a known channel count (last axis).")
        hidden = max(channels // self.reduction, self.min_hidden)
        self.fc1 = keras.layers.Dense(hidden, activation="relu", name="fc1", dtype=self.dtype_policy)
        self.fc2 = keras.layers.Dense(channels, name="fc2", dtype=self.dtype_policy)
        self.fc1.build((None, channels))
        self.fc2.build((None, hidden))

    def attention_map(self, x):
        """The (B, 1, 1, C) gate in [0, 1]."""
        avg = _mean(x, axis=(1, 2))
        mx = ops.max(x, axis=(1, 2))
        gate = ops.sigmoid(self.fc2(self.fc1(avg)) + self.fc2(self.fc1(mx)))
        return gate[:, None, None, :]

    def call(self, x):
        return x * self.attention_map(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction, min_hidden=self.min_hidden)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialAttention(keras.layers.Layer):
    """CBAM spatial gate: ``x * sigmoid(BN(conv_kxk([max_c(x); mean_c(x)])))``.

    The convolution has no bias and, like the official CBAM code, is followed by
    BatchNorm (``use_bn=False`` drops it, as the paper's eq. 4 writes it).

    Example:
        >>> layer = SpatialAttention(kernel_size=7)
        >>> y = layer(keras.ops.ones((1, 8, 8, 32)))
    """

    def __init__(self, kernel_size=7, use_bn=True, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the gate stays centred, got {kernel_size}.")
        self.kernel_size = kernel_size
        self.use_bn = bool(use_bn)

    def build(self, input_shape):
        self.conv = keras.layers.Conv2D(
            1, self.kernel_size, padding="same", use_bias=False, name="conv", dtype=self.dtype_policy
        )
        self.conv.build(tuple(input_shape[:-1]) + (2,))
        if self.use_bn:
            self.bn = BatchNorm(name="bn", dtype=self.dtype_policy)
            self.bn.build(tuple(input_shape[:-1]) + (1,))

    def attention_map(self, x, training=None):
        """The (B, H, W, 1) gate in [0, 1]."""
        pooled = ops.concatenate([ops.max(x, axis=-1, keepdims=True), _mean(x, axis=-1, keepdims=True)], axis=-1)
        logits = self.conv(pooled)
        if self.use_bn:
            logits = self.bn(logits, training=training)
        return ops.sigmoid(logits)

    def call(self, x, training=None):
        return x * self.attention_map(x, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, use_bn=self.use_bn)
        return config


_VARIANTS = ("cbam", "paper")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CBAM(keras.layers.Layer):
    """Channel gate then spatial gate (either may be switched off).

    ``variant="cbam"`` (default) computes ``M_s(F') * F'`` with ``F' = M_c(F) * F``,
    as Woo et al. do. ``variant="paper"`` follows MCSA-Unet's eq. 2 literally,
    ``M_s(F') * F``: the spatial map is computed on the channel-refined
    features but multiplied into the unrefined input.

    Example:
        >>> y = CBAM(reduction=16, kernel_size=7)(keras.ops.ones((2, 16, 16, 64)))
    """

    def __init__(
        self,
        reduction=16,
        kernel_size=7,
        spatial_bn=True,
        channel=True,
        spatial=True,
        variant="cbam",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}.")
        if not (channel or spatial):
            raise ValueError("CBAM needs at least one of channel=True or spatial=True.")
        self.reduction = reduction
        self.kernel_size = kernel_size
        self.spatial_bn = bool(spatial_bn)
        self.channel = bool(channel)
        self.spatial = bool(spatial)
        self.variant = variant
        self.channel_gate = (
            ChannelAttention(reduction, name="channel_gate", dtype=self.dtype_policy) if channel else None
        )
        self.spatial_gate = (
            SpatialAttention(kernel_size, use_bn=spatial_bn, name="spatial_gate", dtype=self.dtype_policy)
            if spatial
            else None
        )

    def build(self, input_shape):
        for gate in (self.channel_gate, self.spatial_gate):
            if gate is not None:
                gate.build(input_shape)

    def call(self, x, training=None):
        refined = self.channel_gate(x) if self.channel_gate is not None else x
        if self.spatial_gate is None:
            return refined
        target = x if self.variant == "paper" else refined
        return target * self.spatial_gate.attention_map(refined, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            reduction=self.reduction,
            kernel_size=self.kernel_size,
            spatial_bn=self.spatial_bn,
            channel=self.channel,
            spatial=self.spatial,
            variant=self.variant,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CSA(CBAM):
    """The paper's CSA feature-enhancement block: ``F1 + CBAM(F1)`` (eq. 6).

    The identity path keeps the unattended features, so the attention can only
    add emphasis and never erase a feature map. ``residual=False`` gives plain
    CBAM (the CA/SA-only rows of the paper's Table 1).

    Example:
        >>> y = CSA(reduction=16)(keras.ops.ones((2, 16, 16, 64)))
    """

    def __init__(self, residual=True, **kwargs):
        super().__init__(**kwargs)
        self.residual = bool(residual)

    def call(self, x, training=None):
        attended = super().call(x, training=training)
        return x + attended if self.residual else attended

    def get_config(self):
        config = super().get_config()
        config.update(residual=self.residual)
        return config
