"""Bilinear upsampling by an integer factor that works on inputs of any, unknown size.

Why not ``keras.layers.UpSampling2D(interpolation="bilinear")``: on the
TensorFlow backend, Keras 3.15's ``ops.image.resize`` checks the target size
in Python (keras-team/keras#22079). Inside a traced function whose input
height and width are unknown, which is what ``predict_on_batch`` traces once
it has seen two tile sizes, that check raises, so UNet 3+ and the bilinear
UNet++ could predict one image size per process.

For an integer factor ``f``, half-pixel bilinear interpolation is periodic:
output pixel ``f * i + p`` mixes input pixels ``i`` and ``i + 1`` (or
``i - 1`` and ``i``) with weights that depend on the phase ``p`` only. So each
axis is ``f`` weighted sums of shifted copies, interleaved; edge pixels are
repeated, which is the clamping the resize does. Only slicing, arithmetic,
stacking and reshaping: no size check, the same numbers as the resize
(to float rounding) and the same on every backend.
"""

import keras
from keras import ops


def _upsample_axis(x, factor, axis):
    def cut(tensor, start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return tensor[tuple(index)]

    padded = ops.concatenate([cut(x, 0, 1), x, cut(x, -1, None)], axis=axis)
    previous, following = cut(padded, None, -2), cut(padded, 2, None)
    phases = []
    for phase in range(factor):
        # Source coordinate of output pixel factor * i + phase is i + offset.
        offset = (phase + 0.5) / factor - 0.5
        if offset >= 0:
            phases.append(x * (1.0 - offset) + following * offset if offset else x)
        else:
            phases.append(previous * -offset + x * (1.0 + offset))
    shape = list(ops.shape(x))
    shape[axis] = shape[axis] * factor
    return ops.reshape(ops.stack(phases, axis=axis + 1), shape)


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class BilinearUpSampling2D(keras.layers.Layer):
    """``UpSampling2D(size, interpolation="bilinear")`` (channels last) for inputs of any size.

    Args:
        size: the integer factor, or an (rows, cols) pair of them.

    Example:
        >>> up = BilinearUpSampling2D(4, name="hd3_from_hd5_upsample")
        >>> up(keras.ops.ones((1, 8, 8, 16))).shape
        (1, 32, 32, 16)
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        pair = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else ()
        if len(pair) != 2 or not all(isinstance(s, int) and s >= 1 for s in pair):
            raise ValueError(f"BilinearUpSampling2D: size must be a positive integer or a pair of them; got {size!r}.")
        self.size = pair

    def call(self, inputs):
        x = inputs
        for axis, factor in ((1, self.size[0]), (2, self.size[1])):
            if factor > 1:
                x = _upsample_axis(x, factor, axis)
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        height = None if height is None else height * self.size[0]
        width = None if width is None else width * self.size[1]
        return (batch, height, width, channels)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}
