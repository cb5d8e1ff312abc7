"""The tf.data pipeline every model trains and is evaluated through.

Input: a ``tf.data.Dataset`` of ``{"image": uint8 (H, W, 3), "mask": uint8 (H, W)}``
(from ``sources.load_source``, a TFDS builder, or ``from_arrays``). Output:
batches of ``(image float32 in [0, 255], targets)`` where targets is the mask
``int32 (B, H, W, 1)`` for single-output models, or a dict per model output
(see ``mitoseg_tf.training.targets``).

Training adds, all as graph ops seeded statelessly from ``(seed, element
index)`` so that a seed fixes the whole stream whatever the parallelism:
oversampling of tiles that contain a mitosis, random crops (centred near a
mitosis with probability ``positive_fraction``), the paper's augmentation
(random rescale, rotation by a multiple of 90 degrees, flips; rotations and a
horizontal flip together give all 8 symmetries of the square) and H&E stain
jitter in colour-deconvolution (HED) space.
"""

import numpy as np
import tensorflow as tf
from skimage.color import hed_from_rgb, rgb_from_hed

AUTOTUNE = tf.data.AUTOTUNE
# NumPy, not tf.constant: importing this module must create no TensorFlow tensor, because a
# multi-worker strategy has to be made before the first one (training/run.py imports data first).
_HED_FROM_RGB = hed_from_rgb.astype(np.float32)
_RGB_FROM_HED = rgb_from_hed.astype(np.float32)


def from_arrays(images, masks):
    """A dataset of ``{"image", "mask"}`` from uint8 arrays (N, H, W, 3) and (N, H, W)."""
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3); got {images.shape}.")
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.shape != images.shape[:3]:
        raise ValueError(
            f"masks must have shape (N, H, W) = {images.shape[:3]} to match the images; got {masks.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError("The dataset is empty: no images were given.")
    if masks.size and (masks.min() < 0 or masks.max() > 1):
        raise ValueError(f"masks must be binary (0 background, 1 mitosis); found values {np.unique(masks)[:10]}.")
    return tf.data.Dataset.from_tensor_slices({"image": images.astype(np.uint8), "mask": masks.astype(np.uint8)})


def _has_mitosis(example):
    return tf.reduce_any(example["mask"] > 0)


def _count(ds):
    def add(counts, example):
        return counts + tf.stack([tf.constant(1, tf.int64), tf.cast(_has_mitosis(example), tf.int64)])

    total, positives = ds.reduce(tf.zeros(2, tf.int64), add).numpy()
    return int(total), int(positives)


def _stain_jitter(image, seed, strength):
    """Scale and shift each stain's optical density (Tellez et al. 2018 style HED jitter)."""
    od = -tf.math.log((image + 1.0) / 256.0)
    hed = tf.reshape(od, (-1, 3)) @ _HED_FROM_RGB
    alpha = tf.random.stateless_uniform((1, 3), seed, 1.0 - strength, 1.0 + strength)
    beta = tf.random.stateless_uniform((1, 3), seed + 1, -strength, strength)
    od = (hed * alpha + beta) @ _RGB_FROM_HED
    rgb = 256.0 * tf.exp(-tf.reshape(od, tf.shape(image))) - 1.0
    return tf.clip_by_value(rgb, 0.0, 255.0)


def _hsv_jitter(image, seed, strength):
    """Hue shift up to +-``strength`` of the colour circle, saturation x(1 +- 3 strength), contrast x(1 +- strength).

    HED jitter alone keeps each stain's hue; scanners differ in hue too (MITOS-2012's Aperio
    fields are red where AMi-Br's crops are purple), which Tellez et al. 2019 found HSV
    jitter on top of HED jitter to cover best for mitosis detection.
    """
    x = image / 255.0
    x = tf.image.stateless_random_hue(x, min(strength, 0.5), seed)
    x = tf.image.stateless_random_saturation(x, max(1.0 - 3 * strength, 0.0), 1.0 + 3 * strength, seed + 1)
    x = tf.image.stateless_random_contrast(x, 1.0 - strength, 1.0 + strength, seed + 2)
    return tf.clip_by_value(x * 255.0, 0.0, 255.0)


# Training augmentation strengths a run may set (RunConfig.augment).
AUGMENT_OPTIONS = ("stain_jitter", "hsv_jitter")


def check_augment(options):
    unknown = sorted(set(options or {}) - set(AUGMENT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {unknown}; accepted: {', '.join(AUGMENT_OPTIONS)}.")
    for name, value in (options or {}).items():
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"augmentation {name} must be a strength in [0, 1]; got {value!r}.")
    return dict(options or {})


# 99th percentiles of the hematoxylin and eosin optical densities of a well-stained
# H&E tile (MoNuSeg breast/kidney tiles measured 1.1-2.6 H and 0.3-1.4 E).
REFERENCE_HE_DENSITY = (1.8, 0.8)


def stain_normalise(image, reference=REFERENCE_HE_DENSITY):
    """Scale each stain's optical density so its 99th percentile matches ``reference``.

    Fixed-vector normalisation: the tile is unmixed with Ruifrok & Johnston's H&E
    matrix (skimage's ``hed_from_rgb``), each stain's concentration rescaled, and
    the tile re-mixed. It evens out stain strength between scanners and labs
    without estimating stain vectors per tile (Macenko), which fails on tiles
    with little tissue. ``image``: float (H, W, 3) in [0, 255].
    """
    od = -tf.math.log((image + 1.0) / 256.0)
    hed = tf.reshape(od, (-1, 3)) @ _HED_FROM_RGB
    sample = tf.sort(hed[::7, :2], axis=0)  # every 7th pixel is plenty for a percentile
    index = tf.cast(0.99 * tf.cast(tf.shape(sample)[0] - 1, tf.float32), tf.int32)
    scale = tf.constant(reference, tf.float32) / tf.maximum(sample[index], 1e-3)
    hed = hed * tf.concat([scale, [1.0]], 0)[None]
    rgb = 256.0 * tf.exp(-tf.reshape(hed @ _RGB_FROM_HED, tf.shape(image))) - 1.0
    return tf.clip_by_value(rgb, 0.0, 255.0)


def _crop_window(mask, seed, crop_size, scale_range, positive_fraction):
    """Top-left corner and side of a square window (side = crop_size * random scale)."""
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    scale = tf.random.stateless_uniform((), seed, scale_range[0], scale_range[1])
    side = tf.cast(tf.round(crop_size * scale), tf.int32)
    side = tf.minimum(side, tf.minimum(height, width))
    uniform = tf.random.stateless_uniform((2,), seed + 2)
    top = tf.cast(uniform[0] * tf.cast(height - side + 1, tf.float32), tf.int32)
    left = tf.cast(uniform[1] * tf.cast(width - side + 1, tf.float32), tf.int32)

    coords = tf.where(mask > 0)
    n = tf.shape(coords)[0]
    want_positive = tf.random.stateless_uniform((), seed + 3) < positive_fraction

    def around_mitosis():
        pick = tf.random.stateless_uniform((), seed + 4, 0, n, dtype=tf.int32)
        centre = tf.cast(coords[pick], tf.int32)
        # The figure pixel lands anywhere in the central half of the window, not always the middle.
        jitter = tf.random.stateless_uniform((2,), seed + 5, -side // 4, side // 4 + 1, dtype=tf.int32)
        corner = centre + jitter - side // 2
        return (
            tf.clip_by_value(corner[0], 0, height - side),
            tf.clip_by_value(corner[1], 0, width - side),
        )

    top, left = tf.cond(tf.logical_and(want_positive, n > 0), around_mitosis, lambda: (top, left))
    return top, left, side


def _augment(
    index,
    example,
    *,
    seed,
    crop_size,
    scale_range,
    positive_fraction,
    stain_jitter,
    rotate,
    flip,
    normalise=False,
    hsv_jitter=0.0,
):
    element_seed = tf.stack([tf.cast(seed, tf.int64), index])
    seeds = tf.random.experimental.stateless_split(element_seed, 4)
    image = tf.cast(example["image"], tf.float32)
    mask = example["mask"][..., None]
    if "centre" in example:  # the patch stream already decided which patches are mitosis-centred
        positive_fraction = tf.cast(example["centre"], tf.float32)

    if crop_size is not None:
        top, left, side = _crop_window(example["mask"], seeds[0], crop_size, scale_range, positive_fraction)
        image = tf.image.resize(image[top : top + side, left : left + side], (crop_size, crop_size), "bilinear")
        mask = tf.image.resize(mask[top : top + side, left : left + side], (crop_size, crop_size), "nearest")
    if rotate:
        k = tf.random.stateless_uniform((), seeds[1], 0, 4, dtype=tf.int32)
        image, mask = tf.image.rot90(image, k), tf.image.rot90(mask, k)
    if flip:
        do_flip = tf.random.stateless_uniform((), seeds[2]) < 0.5
        image = tf.cond(do_flip, lambda: tf.reverse(image, [1]), lambda: image)
        mask = tf.cond(do_flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    if normalise:
        image = stain_normalise(image)
    if stain_jitter:
        image = _stain_jitter(image, seeds[3], stain_jitter)
    if hsv_jitter:
        image = _hsv_jitter(image, seeds[3] + 2, hsv_jitter)
    return {"image": image, "mask": mask}


def _plain(example, normalise=False):
    image = tf.cast(example["image"], tf.float32)
    return {"image": stain_normalise(image) if normalise else image, "mask": example["mask"][..., None]}


def _to_model_inputs(example, roles):
    mask = tf.cast(example["mask"], tf.int32)
    if roles is None or len(roles) == 1:
        return example["image"], mask
    targets = {}
    for name, role in roles.items():
        if role == "classification":
            # (1,) per tile -> (B, 1) batches, the shape of a per-tile classification output
            targets[name] = tf.reshape(tf.cast(tf.reduce_any(mask > 0), tf.float32), (1,))
        elif role == "detection":
            continue  # a detector derives its instance targets from the mask itself
        else:
            targets[name] = mask
    return example["image"], targets


def make_pipeline(
    source,
    *,
    training,
    batch_size,
    crop_size=None,
    seed=0,
    positive_fraction=0.5,
    scale_range=(0.8, 1.25),
    stain_jitter=0.05,
    hsv_jitter=0.0,
    rotate=True,
    flip=True,
    shuffle_buffer=512,
    roles=None,
    normalise=False,
):
    """Batches of ``(image, targets)`` for ``model.fit`` / ``evaluate``.

    Args:
        source: dataset of ``{"image": uint8 (H, W, 3), "mask": uint8 (H, W)}``.
        training: infinite, shuffled, oversampled and augmented stream if True;
            one ordered, unaugmented pass if False.
        crop_size: side of the square training crops (None: whole tiles, which
            must then be square for the rotations).
        positive_fraction: share of training samples drawn from tiles with a
            mitosis and centred near one (None disables both).
        roles: ``models.outputs.output_roles(model)`` for multi-output models.
        normalise: H&E stain normalisation (``stain_normalise``) of every image,
            in training and evaluation alike.
    """
    check_batch_size(batch_size)
    if positive_fraction is not None and not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1] or None; got {positive_fraction!r}.")
    source = source.map(lambda e: {"image": e["image"], "mask": e["mask"]})
    total, positives = _count(source)
    if total == 0:
        raise ValueError("The dataset is empty: no (image, mask) examples to train or evaluate on.")

    if not training:
        ds = source.map(lambda e: _plain(e, normalise), num_parallel_calls=AUTOTUNE)
    else:
        shuffle = min(shuffle_buffer, total)
        # Probability that a crop of a tile with a mitosis is centred near one.
        centre_probability = positive_fraction or 0.0
        if positive_fraction is not None and 0 < positives < total:
            # The sampler already draws positive tiles at rate positive_fraction: centre all
            # their crops, or the share of mitosis-centred crops would be positive_fraction**2.
            centre_probability = 1.0
            pos = source.filter(_has_mitosis).repeat().shuffle(min(shuffle, positives), seed=seed)
            neg = source.filter(lambda e: tf.logical_not(_has_mitosis(e)))
            neg = neg.repeat().shuffle(min(shuffle, total - positives), seed=seed + 1)
            ds = tf.data.Dataset.sample_from_datasets(
                [pos, neg], weights=[positive_fraction, 1.0 - positive_fraction], seed=seed
            )
        else:
            ds = source.repeat().shuffle(shuffle, seed=seed)
        return augment_and_batch(
            ds,
            batch_size=batch_size,
            roles=roles,
            seed=seed,
            crop_size=crop_size,
            scale_range=scale_range,
            positive_fraction=centre_probability,
            stain_jitter=stain_jitter,
            hsv_jitter=hsv_jitter,
            rotate=rotate,
            flip=flip,
            normalise=normalise,
        )
    ds = ds.map(lambda e: _to_model_inputs(e, roles), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def check_batch_size(batch_size):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")


def augment_and_batch(stream, *, batch_size, roles=None, **augment_options):
    """The training tail every stream shares: seeded augmentation (``_augment``), model targets, full batches."""
    ds = stream.enumerate().map(lambda i, e: _augment(i, e, **augment_options), num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda e: _to_model_inputs(e, roles), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
