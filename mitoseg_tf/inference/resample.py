"""Resampling between an image's pixel size and the pixel size a network was trained at.

A network sees figures at one scale; fields scanned at 0.2273, 0.2456 or
0.25 um/px (10 % apart) or at 20x (0.5 um/px) are brought to that scale
before prediction and the results mapped back to the input's pixels.

Bilinear with antialiasing through ``keras.ops.image.resize``: it is the same
operation as ``tf.image.resize(..., antialias=True)`` in the exported
SavedModel, so a deployer's count equals ``mitoseg predict``'s (OpenCV's
INTER_AREA is faster on the CPU but has no in-graph twin; benchmarks/resample.py).
"""

import math

import numpy as np

# Pixel sizes closer than this are treated as equal: 1 % is a third of a pixel across a 30-px figure.
MPP_TOLERANCE = 0.01
# The one rule for a pixel size, wherever it enters (--mpp, a file's metadata, a recipe's target_mpp, a reader's mpp
# option, a run's detection.json, a weights card): microns per pixel within this range. 0.05 is finer than any
# optical scanner samples (a 100x oil objective: about 0.1); at 10 a 10-um figure is one pixel.
MPP_RANGE = (0.05, 10.0)
# The resampler refuses to make an image larger than this (2^28 px, 3 GB as float32 RGB): a plausible pixel size
# on a large field can still ask for it. Whole slides go through ``mitoseg slide``, which resamples tile by tile.
MAX_RESAMPLED_PIXELS = 2**28
# ... or to shrink one below this many pixels on a side (nothing can be found in it).
MIN_RESAMPLED_SIDE = 8


def check_mpp(mpp, what="mpp"):
    """``mpp`` as a float within ``MPP_RANGE``; otherwise one ValueError naming ``what`` gave it, the value and the range."""
    try:  # a number, not text or a truth value: "0.5" in a JSON file or `mpp: yes` in YAML is a typing mistake
        value = math.nan if isinstance(mpp, (bool, np.bool_, str, bytes)) else float(mpp)
    except (TypeError, ValueError):
        value = math.nan
    low, high = MPP_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(
            f"{what}: {mpp!r} is not a plausible pixel size; accepted: {low:g} to {high:g} microns per pixel "
            "(0.25 at 40x, 0.5 at 20x)."
        )
    return value


def same_resolution(mpp_a, mpp_b, tolerance=MPP_TOLERANCE):
    return abs(float(mpp_a) / float(mpp_b) - 1.0) <= tolerance


def resampled_shape(shape, from_mpp, to_mpp):
    """(height, width) of an image of ``shape`` at ``from_mpp`` once brought to ``to_mpp``.

    ValueError when that image would exceed ``MAX_RESAMPLED_PIXELS`` or shrink
    below ``MIN_RESAMPLED_SIDE`` px on a side (an image already that small may shrink further).
    """
    if same_resolution(from_mpp, to_mpp):
        return int(shape[0]), int(shape[1])
    factor = float(from_mpp) / float(to_mpp)
    out = max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))
    what = (
        f"an image of {int(shape[0])}x{int(shape[1])} px at {float(from_mpp):g} um/px would be "
        f"{out[0]}x{out[1]} px at {float(to_mpp):g} um/px"
    )
    if out[0] * out[1] > MAX_RESAMPLED_PIXELS:
        raise ValueError(
            f"{what}, more than the {MAX_RESAMPLED_PIXELS / 1e6:.0f} Mpx the resampler makes; check the "
            "pixel size, and use `mitoseg slide` for whole slides (it resamples tile by tile)."
        )
    if min(out) < MIN_RESAMPLED_SIDE <= min(int(s) for s in shape[:2]):
        raise ValueError(f"{what}, under {MIN_RESAMPLED_SIDE} px on a side; check the pixel size.")
    return out


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
            x.astype(np.float32),
            tuple(int(s) for s in shape),
            interpolation="bilinear",
            antialias=True,
            data_format="channels_last",
        )
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
