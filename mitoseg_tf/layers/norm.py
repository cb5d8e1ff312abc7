"""Batch normalisation used by every zoo block (``norm="batch"``, the default).

One class so that speed work on normalisation (see benchmarks/) lands in every
network at once; ``layers.conv.normalization`` picks it, GroupNorm or nothing.
Defaults follow the PyTorch reference implementations of the zoo's networks:
momentum 0.9 (torch's 0.1) and epsilon 1e-5.

Why not plain ``keras.layers.BatchNormalization``: without XLA (the TensorFlow
CPU default) every op writes its full-size result to memory, and the stock
layer runs about 7 full-size float32 ops forward and 15 backward per call (it
upcasts bfloat16 activations to float32, computes two-pass moments, then lets
autodiff differentiate through the moments, broadcasting with Tile). On CPU
that memory traffic, not arithmetic, is the cost: under ``mixed_bfloat16`` a
stock BatchNorm's forward and backward took as long as the 3x3 convolution in
front of it. This layer computes the same result with 5 full-size ops forward
and 6 backward, all in the activation dtype, with an analytic backward pass.
Profile and numbers: benchmarks/README.md.
"""

import keras
from keras import ops

# float16 sums of activations overflow, so float16 (and float64) keep the stock code.
_FAST_DTYPES = ("float32", "bfloat16")


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the reference implementations' defaults, made fast.

    Same variables (gamma, beta, moving_mean, moving_variance, float32), same
    config, same semantics: training normalises with the batch mean and biased
    variance and moves the moving averages by ``momentum``; inference uses the
    moving averages. Only the computation differs:

    - statistics are accumulated in float32 from the activations as they are
      (bfloat16 stays bfloat16 in memory), around a first estimate of the mean
      so that the variance does not suffer from cancellation;
    - normalisation is one per-channel ``x * scale + shift`` in the activation
      dtype (scale and shift are computed in float32);
    - the backward pass is the closed-form BatchNorm gradient (two per-channel
      sums and one ``a * dy + b * x + c``), not autodiff through the moments.

    In float32 the results match the stock layer to float32 rounding, in
    bfloat16 to bfloat16 rounding. Masks, ``renorm``, ``synchronized`` and
    float16/float64 inputs use the stock code.

    Example:
        >>> bn = BatchNorm(name="enc1_bn1")
        >>> y = bn(keras.ops.ones((2, 8, 8, 16)), training=True)
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def call(self, inputs, training=None, mask=None):
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if mask is not None or self.renorm or self.synchronized or dtype not in _FAST_DTYPES:
            return super().call(inputs, training=training, mask=mask)
        gamma = ops.cast(self.gamma, "float32") if self.scale else None
        beta = ops.cast(self.beta, "float32") if self.center else None
        if training and self.trainable:
            outputs, mean, variance = self._normalize_with_batch_stats(inputs, gamma, beta)
            # The stock layer's update expression, so moving statistics agree with it
            # to rounding for the same batch statistics.
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return outputs
        scale = ops.rsqrt(ops.cast(self.moving_variance, "float32") + self.epsilon)
        if gamma is not None:
            scale = scale * gamma
        shift = -ops.cast(self.moving_mean, "float32") * scale
        if beta is not None:
            shift = shift + beta
        return self._affine_with_gradient(inputs, scale, shift)

    # -- per-channel primitives -------------------------------------------------

    def _channel_axis(self, x):
        return self.axis % len(x.shape)

    def _affine(self, x, scale, shift=None):
        """``x * scale (+ shift)`` with float32 (C,) ``scale``/``shift``, computed in x's dtype.

        On TensorFlow a 4-D channels-last tensor goes through a 1x1 depthwise
        convolution plus a 1-D add: Grappler fuses the two into one oneDNN
        kernel that reads x once and rounds once, ~5x faster on CPU than the two
        broadcasting ops (Eigen's broadcast is slow for short channel rows).
        Other backends fuse or vectorise the plain expression themselves.
        """
        scale = ops.cast(scale, x.dtype)
        shift = None if shift is None else ops.cast(shift, x.dtype)
        axis = self._channel_axis(x)
        rank = len(x.shape)
        if keras.backend.backend() == "tensorflow" and rank == 4 and axis == 3:
            kernel = ops.reshape(scale, (1, 1, -1, 1))
            y = ops.depthwise_conv(x, kernel, strides=1, padding="valid", data_format="channels_last")
            return y if shift is None else y + shift
        if axis != rank - 1:
            shape = [1] * rank
            shape[axis] = -1
            scale = ops.reshape(scale, shape)
            shift = None if shift is None else ops.reshape(shift, shape)
        y = x * scale
        return y if shift is None else y + shift

    def _sum(self, x):
        """Per-channel sum in float32.

        Backends accumulate a low-precision sum in float32 but round the result
        to the input dtype (2**-9 relative for bfloat16), so only the innermost
        reduced axis is summed in x's dtype and the much smaller partial sums
        are added in float32: their independent rounding errors mostly cancel.
        Summing one axis first is also faster on TensorFlow than one reduction
        over all of them.
        """
        axes = list(self._reduction_axes)
        partial = ops.cast(ops.sum(x, axis=axes[-1]), "float32")
        if len(axes) == 1:
            return partial
        # axes is ascending, so the remaining axes keep their positions.
        return ops.sum(partial, axis=axes[:-1])

    def _count(self, x):
        """Values per channel, as float32 (the batch size may be dynamic)."""
        shape = ops.shape(x)
        count = 1.0
        for axis in self._reduction_axes:
            count = count * ops.cast(shape[axis], "float32")
        return count

    # -- inference -------------------------------------------------------------

    def _affine_with_gradient(self, x, scale, shift):
        """``_affine`` with its gradient stated, so frozen-BN fine-tuning stays cheap too."""
        affine, sum_ = self._affine, self._sum

        @ops.custom_gradient
        def apply(x, scale, shift):
            def grad(*grad_args, upstream=None):
                # TensorFlow/JAX pass the upstream gradient positionally, torch by keyword.
                dy = upstream if upstream is not None else grad_args[0]
                return affine(dy, scale), sum_(dy * x), sum_(dy)

            return affine(x, scale, shift), grad

        return apply(x, scale, shift)

    # -- training --------------------------------------------------------------

    def _normalize_with_batch_stats(self, x, gamma, beta):
        count = self._count(x)
        channels = x.shape[self._channel_axis(x)]
        # Centre on a first estimate of the mean, rounded to x's dtype so the
        # subtraction stays in that dtype. The variance then comes from centred
        # values and E[d^2] - E[d]^2 does not cancel.
        mean = ops.stop_gradient(self._sum(x) / count)
        rough_mean = ops.cast(ops.cast(mean, x.dtype), "float32")
        centred = self._centre(x, rough_mean, channels)
        frozen = ops.stop_gradient(centred)
        offset = mean - rough_mean  # E[d], exact in float32
        variance = ops.maximum(self._sum(ops.square(frozen)) / count - ops.square(offset), 0.0)
        inv_std = ops.rsqrt(variance + self.epsilon)
        outputs = self._normalize_centred(centred, offset, inv_std, gamma, beta, count)
        return outputs, mean, variance

    def _centre(self, x, rough_mean, channels):
        """``x - rough_mean``, whose gradient w.r.t. x is the identity.

        Stated as a custom gradient so that autodiff does not differentiate the
        depthwise convolution ``_affine`` uses (a full-size op for an identity);
        the gradient of ``_normalize_centred`` w.r.t. its input is then the
        gradient w.r.t. x.
        """
        affine = self._affine

        @ops.custom_gradient
        def centre(x, rough_mean):
            def grad(*grad_args, upstream=None):
                dy = upstream if upstream is not None else grad_args[0]
                return dy, ops.zeros_like(rough_mean)

            return affine(x, ops.ones((channels,), "float32"), -rough_mean), grad

        return centre(x, rough_mean)

    def _normalize_centred(self, centred, offset, inv_std, gamma, beta, count):
        """``gamma * (centred - offset) * inv_std + beta`` with the closed-form BN gradient.

        ``offset`` and ``inv_std`` are the batch statistics of ``centred``; the
        gradient accounts for their dependence on it analytically, so they get
        zero gradients of their own.
        """
        affine, sum_ = self._affine, self._sum
        has_gamma, has_beta = gamma is not None, beta is not None
        args = [centred, offset, inv_std]
        if has_gamma:
            args.append(gamma)
        if has_beta:
            args.append(beta)

        @ops.custom_gradient
        def normalize(*args):
            d, offset, inv_std = args[:3]
            scale = inv_std * args[3] if has_gamma else inv_std
            shift = -offset * scale
            if has_beta:
                shift = shift + args[-1]

            def grad(*grad_args, upstream=None):
                dy = upstream if upstream is not None else grad_args[0]
                sum_dy = sum_(dy)
                # sum(dy * x_hat), x_hat = (d - offset) * inv_std: also d(loss)/d(gamma).
                sum_dy_xhat = (sum_(dy * d) - offset * sum_dy) * inv_std
                # dx = scale * (dy - mean(dy) - x_hat * mean(dy * x_hat)) = scale*dy + b*d + c.
                b = -scale * inv_std * sum_dy_xhat / count
                c = -scale * sum_dy / count - b * offset
                # A subtraction, not an addition: Grappler's AddOpsRewrite would merge
                # an add chain into AddN + broadcast add and undo the fused (d*b + c).
                dx = affine(dy, scale) - affine(d, -b, -c)
                grads = [dx, ops.zeros_like(offset), ops.zeros_like(inv_std)]
                if has_gamma:
                    grads.append(sum_dy_xhat)
                if has_beta:
                    grads.append(sum_dy)
                return tuple(grads)

            return affine(d, scale, shift), grad

        return normalize(*args)


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class GroupNorm(keras.layers.GroupNormalization):
    """``keras.layers.GroupNormalization``, made fast for channels-last images in bfloat16.

    Same variables (gamma, beta, float32), same config, same result: each
    image's channels are split into ``groups`` contiguous groups and each group
    is normalised by its own mean and biased variance over the spatial
    positions and the group's channels. Only the computation differs, for the
    reason ``BatchNorm`` gives: the stock layer upcasts bfloat16 activations to
    float32 and lets autodiff differentiate through its reshapes and moments,
    which made a GroupNorm U-Net train at 0.44x the BatchNorm one's speed
    under ``mixed_bfloat16`` (benchmarks/README.md). Here:

    - per-image, per-channel sums of ``x`` and ``x**2`` are accumulated in
      float32 from the activations as they are (summed over width in x's dtype,
      then over height in float32, as ``BatchNorm._sum``), then added per group;
      the variance is ``E[x^2] - E[x]^2``, which loses accuracy only when a
      group's mean is many times its standard deviation;
    - normalisation is one per-image, per-channel ``x * scale + shift`` in x's
      dtype;
    - the backward pass is the closed-form gradient (``a * dy + b * x + c``).

    Other ranks, channel axes and float16/float64 inputs use the stock code.

    Example:
        >>> gn = GroupNorm(groups=8, epsilon=1e-5, name="enc1_gn1")
        >>> y = gn(keras.ops.ones((2, 8, 8, 16)))
    """

    def call(self, inputs, mask=None):
        # ``mask`` is ignored, as by the stock layer; it stays in the signature because functional
        # models saved with this layer record it in their call arguments and would not load without it.
        # The stock layer casts its input to the compute dtype itself (Keras does not autocast here).
        inputs = ops.cast(inputs, self.compute_dtype)
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if len(inputs.shape) != 4 or self.axis % 4 != 3 or dtype not in _FAST_DTYPES:
            return super().call(inputs)
        channels = inputs.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,), "float32")
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,), "float32")
        return self._normalize(inputs, gamma, beta)

    def _sum(self, x):
        """Per-image, per-channel float32 sum over the spatial axes: (B, H, W, C) -> (B, C)."""
        return ops.sum(ops.cast(ops.sum(x, axis=2), "float32"), axis=1)

    def _per_group(self, per_channel):
        """(B, C) -> (B, C): each channel gets the sum over its group's channels."""
        channels = per_channel.shape[-1]
        size = channels // self.groups
        grouped = ops.sum(ops.reshape(per_channel, (-1, self.groups, size)), axis=-1, keepdims=True)
        return ops.reshape(ops.repeat(grouped, size, axis=-1), (-1, channels))

    @staticmethod
    def _affine(x, scale, shift=None):
        """``x * scale (+ shift)`` with float32 (B, C) ``scale``/``shift``, in x's dtype."""
        y = x * ops.cast(scale[:, None, None, :], x.dtype)
        return y if shift is None else y + ops.cast(shift[:, None, None, :], x.dtype)

    def _normalize(self, x, gamma, beta):
        sum_, per_group, affine = self._sum, self._per_group, self._affine
        shape = ops.shape(x)
        count = ops.cast(shape[1], "float32") * ops.cast(shape[2], "float32") * (x.shape[-1] // self.groups)
        epsilon = self.epsilon

        @ops.custom_gradient
        def normalize(x, gamma, beta):
            mean = per_group(sum_(x)) / count
            variance = ops.maximum(per_group(sum_(ops.square(x))) / count - ops.square(mean), 0.0)
            inv_std = ops.rsqrt(variance + epsilon)
            scale = inv_std * gamma
            shift = beta - mean * scale

            def grad(*grad_args, upstream=None):
                # TensorFlow/JAX pass the upstream gradient positionally, torch by keyword.
                dy = upstream if upstream is not None else grad_args[0]
                sum_dy = sum_(dy)
                # Per image and channel: sum(dy * x_hat), x_hat = (x - mean) * inv_std.
                sum_dy_xhat = (sum_(dy * x) - mean * sum_dy) * inv_std
                # With g = dy * gamma: dx = inv_std * (g - mean_group(g) - x_hat * mean_group(g * x_hat))
                #                         = scale * dy + b * x + c.
                mean_g = per_group(sum_dy * gamma) / count
                mean_g_xhat = per_group(sum_dy_xhat * gamma) / count
                b = -inv_std * inv_std * mean_g_xhat
                c = -inv_std * mean_g - b * mean
                dx = affine(dy, scale) + affine(x, b, c)
                return dx, ops.sum(sum_dy_xhat, axis=0), ops.sum(sum_dy, axis=0)

            return affine(x, scale, shift), grad

        return normalize(x, gamma, beta)
