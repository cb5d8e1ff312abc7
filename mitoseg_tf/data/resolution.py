"""One pixel size for every source: examples resampled in the graph from their own ``mpp`` to a target.

Public sets are scanned at 0.185-0.2456 um/px (MITOS-2012, MITOS-ATYPIA-14) or 0.25
(AMi-Br, MIDOG, TUPAC16); a network trained on a mixture sees one figure at
several scales unless every image is brought to one ``target_mpp`` first.

The image is resized exactly as prediction resizes it
(``mitoseg_tf.inference.resample``: bilinear, antialiased, the same rounding of
the new size and the same 1 % tolerance under which nothing is resampled), so
a network meets at prediction time the pixels it was trained on. Masks go
through the same bilinear filter and are thresholded at one half, which keeps a
figure's outline where the image puts it (nearest-neighbour would shift it by
up to half a pixel). Points follow tf.image.resize's half-pixel convention: a
pixel centre at ``r`` maps to ``(r + 0.5) * new / old - 0.5``.
"""

import numpy as np
import tensorflow as tf

from mitoseg_tf.inference.resample import MPP_TOLERANCE, check_mpp, resampled_shape

__all__ = [
    "check_target_mpp",
    "resample_example",
    "resample_fields",
    "resample_image",
    "resampled_size",
    "resampled_shape",
]


def check_target_mpp(target_mpp):
    """``None`` (no resampling) or a positive float; one clear error otherwise."""
    return None if target_mpp is None else check_mpp(target_mpp, "target_mpp")


def resampled_size(size, from_mpp, to_mpp):
    """Graph twin of ``inference.resample.resampled_shape``: int32 (2,) size at ``to_mpp``."""
    from_mpp = tf.cast(from_mpp, tf.float64)
    factor = from_mpp / tf.constant(float(to_mpp), tf.float64)
    scaled = tf.maximum(tf.round(tf.cast(size, tf.float64) * factor), 1.0)
    same = tf.abs(factor - 1.0) <= MPP_TOLERANCE
    return tf.where(same, tf.cast(size, tf.int32), tf.cast(scaled, tf.int32))


def resample_image(image, size):
    """uint8 ``image`` (H, W, 3) or a batch (N, H, W, 3) at ``size`` (2,), as ``inference.resample.to_resolution``.

    The training pipeline and the exported ``serving_figures`` both call this, so a
    network meets in deployment the pixels it was trained on.
    """
    old = tf.shape(image)[-3:-1]

    def resize():
        pixels = tf.image.resize(tf.cast(image, tf.float32), size, "bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)

    return tf.cond(tf.reduce_all(tf.equal(size, old)), lambda: image, resize)


def _scale_points(points, old_size, new_size):
    factor = tf.cast(new_size, tf.float32) / tf.cast(old_size, tf.float32)
    return (tf.cast(points, tf.float32) + 0.5) * factor[None] - 0.5


def resample_fields(image, mask, points, from_mpp, to_mpp):
    """``image`` uint8 (H, W, 3), ``mask`` uint8 (H, W) and each (K, 2) array of ``points`` at ``to_mpp``.

    ``points``: a tuple of (row, col) arrays (figure centres, hard negatives).
    Returns ``(image, mask, points)`` with the same dtypes.
    """
    old = tf.shape(image)[:2]
    new = resampled_size(old, from_mpp, to_mpp)

    def resize_mask():
        labels = tf.image.resize(tf.cast(mask[..., None], tf.float32), new, "bilinear", antialias=True)[..., 0]
        return tf.cast(labels >= 0.5, mask.dtype)

    mask = tf.cond(tf.reduce_all(tf.equal(new, old)), lambda: mask, resize_mask)
    return resample_image(image, new), mask, tuple(_scale_points(p, old, new) for p in points)


def resample_example(example, target_mpp):
    """A decoded example (``image``, ``mask`` (H, W) or (H, W, 1), ``points``, ``negatives``, ``mpp``) at ``target_mpp``.

    Other keys pass through; ``mpp`` becomes ``target_mpp``. ``target_mpp`` None: ``example`` unchanged.
    """
    if target_mpp is None:
        return example
    mask = example["mask"]
    channel = mask.shape.rank == 3
    names = [k for k in ("points", "negatives") if k in example]
    image, flat, points = resample_fields(
        example["image"],
        mask[..., 0] if channel else mask,
        tuple(example[k] for k in names),
        example["mpp"],
        target_mpp,
    )
    out = dict(example, image=image, mask=flat[..., None] if channel else flat, mpp=tf.constant(target_mpp, tf.float32))
    out.update(zip(names, points))
    return out


def resampled_sizes(sizes, mpps, target_mpp):
    """Python mirror for headers: ``(height, width)`` of each image once at ``target_mpp``."""
    if target_mpp is None:
        return list(sizes)
    return [resampled_shape(size, float(np.float32(mpp)), target_mpp) for size, mpp in zip(sizes, mpps)]
