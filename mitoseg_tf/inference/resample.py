"""Resampling between an image's pixel size and the pixel size a network was trained at.

A network sees figures at one scale; fields scanned at 0.2273, 0.2456 or
0.25 um/px (10 % apart) or at 20x (0.5 um/px) are brought to that scale
before prediction and the results mapped back to the input's pixels.

Bilinear with antialiasing through ``keras.ops.image.resize``: it is the same
operation as ``tf.image.resize(..., antialias=True)`` in the exported
SavedModel, so a deployer's count equals ``mitoseg predict``'s (OpenCV's
INTER_AREA is faster on the CPU but has no in-graph twin; benchmarks/resample.py).
"""

import numpy as np

# Pixel sizes closer than this are treated as equal: 1 % is a third of a pixel across a 30-px figure.
MPP_TOLERANCE = 0.01


def check_mpp(mpp, what="mpp"):
    """``mpp`` as a positive float; one clear error otherwise."""
    try:
        value = float(mpp)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number of microns per pixel (e.g. 0.25 at 40x); got {mpp!r}.")
    return value


def same_resolution(mpp_a, mpp_b, tolerance=MPP_TOLERANCE):
    return abs(float(mpp_a) / float(mpp_b) - 1.0) <= tolerance


def resampled_shape(shape, from_mpp, to_mpp):
    """(height, width) of an image of ``shape`` at ``from_mpp`` once brought to ``to_mpp`` (at least 1 px)."""
    if same_resolution(from_mpp, to_mpp):
        return int(shape[0]), int(shape[1])
    factor = float(from_mpp) / float(to_mpp)
    return max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))


def resize(array, shape):
    """``array`` (H, W) or (H, W, C) resized to ``shape`` (bilinear, antialiased); float32 out, same channels."""
    import keras  # start-up: inference (and data, slides) import without Keras; only a resize needs it

    array = np.asarray(array)
    if tuple(array.shape[:2]) == tuple(shape):
        return array.astype(np.float32)
    squeeze = array.ndim == 2
    x = array[..., None] if squeeze else array
    out = keras.ops.convert_to_numpy(
        keras.ops.image.resize(
            x.astype(np.float32), tuple(int(s) for s in shape), interpolation="bilinear", antialias=True,
            data_format="channels_last",
        )  # fmt: skip
    )
    return out[..., 0] if squeeze else out


def to_resolution(image, from_mpp, to_mpp):
    """``image`` brought from ``from_mpp`` to ``to_mpp``; uint8 stays uint8 (rounded), the input when equal."""
    image = np.asarray(image)
    shape = resampled_shape(image.shape, from_mpp, to_mpp)
    if shape == tuple(image.shape[:2]):
        return image
    out = resize(image, shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8) if image.dtype == np.uint8 else out.astype(image.dtype)


def scale_factors(from_shape, to_shape):
    """(row, col) factors that take pixel-corner coordinates of ``from_shape`` to ``to_shape``."""
    return to_shape[0] / from_shape[0], to_shape[1] / from_shape[1]
