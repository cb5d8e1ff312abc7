"""Training patches streamed from large images, and evaluation tiles cut from them.

MITOS-2012 fields are 2084x2084 and MIDOG's 7000x5000: decoding one costs far
more than augmenting a 256x256 patch, and a shuffle buffer of decoded images
would hold gigabytes. So the stream keeps images encoded (TFDS records read
with ``decode=False``), decodes each visited image once, and cuts
``patches_per_image`` patches from it before moving on; ``cycle_length``
images are open at a time (interleaved, so consecutive patches come from
different images), which bounds memory by ``cycle_length`` decoded images.

Where each patch goes: with probability ``positive_fraction`` centred on a
labelled figure (plus a jitter of up to ``jitter`` x the patch side), with
probability ``hard_negative_fraction`` on a hard negative (look-alikes that
MIDOG, TUPAC16 and MITOS-ATYPIA-14 mark), otherwise anywhere. Patches are cut
``max_scale`` x larger than ``patch_size`` so the shared augmentation
(``pipeline._augment``: rescale, rotations, flips, HED jitter, optional stain
normalisation) can rescale without running off the patch; all randomness is
stateless and seeded from ``(seed, visit, patch)``, so a seed fixes the stream.

``target_mpp``: every decoded image (its mask, figures and hard negatives with
it) is first brought from its own ``mpp`` to this pixel size
(``mitoseg_tf.data.resolution``), so patch sides, jitter and ``exclude_um``
are all at that one scale; evaluation tiles are cut from images resampled the
same way.
"""

import io
import math

import tensorflow as tf
from PIL import Image

from mitoseg_tf.data.pipeline import AUTOTUNE, _plain, _to_model_inputs, augment_and_batch, check_batch_size
from mitoseg_tf.data.resolution import check_target_mpp, resample_fields, resampled_sizes

POSITIVE, HARD_NEGATIVE, RANDOM = 0, 1, 2


def _decode(example):
    image = tf.io.decode_image(example["image"], channels=3, expand_animations=False)
    mask = tf.io.decode_image(example["mask"], channels=1, expand_animations=False)[..., 0]
    return image, mask


def _pad_to(image, mask, side, mirror_mask=False):
    """Reflect-pad the image so both sides are at least ``side``; the mask is zero-padded, or
    mirrored like the image (``mirror_mask``) so that figures reflected into the padding stay labelled."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad_h, pad_w = tf.maximum(side - height, 0), tf.maximum(side - width, 0)
    paddings = [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2]]
    # A reflection needs the image to be wider than the pad; tiny crops fall back to edge copies.
    mode = tf.logical_and(pad_h < height, pad_w < width)
    image = tf.cond(
        mode,
        lambda: tf.pad(image, paddings + [[0, 0]], mode="REFLECT"),
        lambda: tf.pad(image, paddings + [[0, 0]], mode="SYMMETRIC"),
    )
    if mirror_mask:
        mask = tf.cond(
            mode, lambda: tf.pad(mask, paddings, mode="REFLECT"), lambda: tf.pad(mask, paddings, mode="SYMMETRIC")
        )
    else:
        mask = tf.pad(mask, paddings)
    offset = tf.cast(tf.stack([pad_h // 2, pad_w // 2]), tf.float32)
    return image, mask, offset


def _choose_centre(seed, points, negatives, shape, side, positive_fraction, hard_negative_fraction, jitter):
    seeds = tf.random.experimental.stateless_split(seed, 4)
    u = tf.random.stateless_uniform((), seeds[0])
    have_pos, have_neg = tf.shape(points)[0] > 0, tf.shape(negatives)[0] > 0
    kind = tf.where(
        tf.logical_and(u < positive_fraction, have_pos),
        POSITIVE,
        tf.where(
            tf.logical_and(u >= positive_fraction, u < positive_fraction + hard_negative_fraction),
            HARD_NEGATIVE,
            RANDOM,
        ),
    )
    kind = tf.where(tf.logical_and(kind == HARD_NEGATIVE, tf.logical_not(have_neg)), RANDOM, kind)

    def pick(candidates):
        i = tf.random.stateless_uniform((), seeds[1], 0, tf.shape(candidates)[0], dtype=tf.int32)
        shift = tf.random.stateless_uniform((2,), seeds[2], -jitter, jitter) * tf.cast(side, tf.float32)
        return candidates[i] + shift

    anywhere = tf.random.stateless_uniform((2,), seeds[3]) * tf.cast(shape, tf.float32)
    # Only the chosen branch runs, and ``kind`` never picks an empty list.
    centre = tf.case(
        [(tf.equal(kind, POSITIVE), lambda: pick(points)), (tf.equal(kind, HARD_NEGATIVE), lambda: pick(negatives))],
        default=lambda: anywhere,
    )
    return centre, kind


def _clear_of(points, top, left, side, margin):
    """True when no point lies within ``margin`` pixels of the square patch at (top, left)."""
    low = tf.cast(tf.stack([top, left]), tf.float32)
    high = low + tf.cast(side - 1, tf.float32)
    outside = tf.maximum(tf.maximum(low - points, points - high), 0.0)  # per-axis distance to the box
    return tf.reduce_all(tf.reduce_sum(tf.square(outside), axis=1) >= tf.square(margin))


def _patches_of(
    visit,
    example,
    *,
    seed,
    side,
    patches_per_image,
    positive_fraction,
    hard_negative_fraction,
    jitter,
    background_only,
    exclude_um,
    target_mpp=None,
):
    image, mask = _decode(example)
    points, negatives, mpp = example["points"], example["negatives"], example["mpp"]
    if target_mpp is not None:
        image, mask, (points, negatives) = resample_fields(image, mask, (points, negatives), mpp, target_mpp)
        mpp = tf.constant(target_mpp, tf.float32)
    # Figures reflected into the padding of a small image (a 128-pixel AMi-Br crop) keep their labels.
    image, mask, offset = _pad_to(image, mask, side, mirror_mask=True)
    points, negatives = points + offset, negatives + offset
    if background_only:
        # Tissue used as negatives: whatever its own labels mark (MoNuSeg nuclei) is not a mitosis here.
        mask = tf.zeros_like(mask)
    margin = tf.cast(exclude_um, tf.float32) / mpp if exclude_um else None
    shape = tf.shape(mask)

    def cut(j):
        patch_seed = tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + visit, j])
        centre, kind = _choose_centre(
            patch_seed, points, negatives, shape, side, positive_fraction, hard_negative_fraction, jitter
        )
        top = tf.clip_by_value(tf.cast(tf.round(centre[0]), tf.int32) - side // 2, 0, shape[0] - side)
        left = tf.clip_by_value(tf.cast(tf.round(centre[1]), tf.int32) - side // 2, 0, shape[1] - side)
        patch = {
            "image": image[top : top + side, left : left + side],
            "mask": mask[top : top + side, left : left + side],
            "centre": tf.equal(kind, POSITIVE),
            # where the patch was cut (pixels at target_mpp): lets tests and audits see what was sampled
            "corner": tf.stack([top, left]),
        }
        return patch, _clear_of(points, top, left, side, margin) if margin is not None else tf.constant(True)

    patches = tf.data.Dataset.range(patches_per_image).map(cut)
    return patches.filter(lambda _, keep: keep).map(lambda patch, _: patch)


def patch_stream(
    records,
    *,
    patch_size=256,
    patches_per_image=16,
    positive_fraction=0.5,
    hard_negative_fraction=0.1,
    jitter=0.25,
    max_scale=1.25,
    cycle_length=4,
    shuffle_buffer=64,
    seed=0,
    background_only=False,
    exclude_um=None,
    target_mpp=None,
):
    """Infinite stream of ``{"image", "mask", "centre"}`` patches of side ``ceil(patch_size * max_scale)``.

    ``records``: a dataset of encoded examples (``builders.load_dataset(...,
    decode=False)``) with ``image``/``mask`` bytes, ``points``, ``negatives`` and ``mpp``.
    ``background_only``: every mask pixel is background (tissue used only as
    negatives; patches are placed anywhere or on its hard negatives). ``exclude_um``: drop every patch
    with a labelled point within this many microns of it (negatives cut from
    images whose figures are marked by points only). ``target_mpp``: resample
    each image to this many microns per pixel first (None: its own).
    """
    target_mpp = check_target_mpp(target_mpp)
    for name, value in (("positive_fraction", positive_fraction), ("hard_negative_fraction", hard_negative_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {value!r}.")
    if positive_fraction + hard_negative_fraction > 1.0:
        raise ValueError(
            f"positive_fraction + hard_negative_fraction must be at most 1; got {positive_fraction} + {hard_negative_fraction}."
        )
    if patches_per_image < 1 or cycle_length < 1:
        raise ValueError("patches_per_image and cycle_length must be positive integers.")
    if exclude_um is not None and not (isinstance(exclude_um, (int, float)) and exclude_um > 0):
        raise ValueError(f"exclude_um must be a positive number of microns or None; got {exclude_um!r}.")
    if background_only:
        # Its own labels are not figures; its hard negatives (mined false figures) still are negatives.
        positive_fraction = 0.0
    side = int(math.ceil(patch_size * max_scale))
    options = dict(
        seed=seed,
        side=side,
        patches_per_image=patches_per_image,
        positive_fraction=float(positive_fraction),
        hard_negative_fraction=float(hard_negative_fraction),
        jitter=float(jitter),
        background_only=bool(background_only),
        exclude_um=exclude_um,
        target_mpp=target_mpp,
    )
    records = records.map(lambda e: {k: e[k] for k in ("image", "mask", "points", "negatives", "mpp")})
    visits = records.repeat().shuffle(shuffle_buffer, seed=seed).enumerate()
    return visits.interleave(
        lambda i, e: _patches_of(i, e, **options),
        cycle_length=cycle_length,
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


SCALE_RANGE = (0.8, 1.25)


def make_patch_pipeline(records, *, batch_size, patch_size=256, seed=0, scale_range=SCALE_RANGE, roles=None, **options):
    """Training batches ``(image, targets)`` from large images, like ``pipeline.make_pipeline(training=True)``.

    ``options``: those of ``patch_stream`` and of ``augment_patches``.
    """
    augment = {k: options.pop(k) for k in ("stain_jitter", "hsv_jitter", "normalise", "rotate", "flip") if k in options}
    stream = patch_stream(records, patch_size=patch_size, seed=seed, max_scale=scale_range[1], **options)
    return augment_patches(
        stream, batch_size=batch_size, patch_size=patch_size, seed=seed, scale_range=scale_range, roles=roles, **augment
    )


def augment_patches(
    stream,
    *,
    batch_size,
    patch_size,
    seed=0,
    scale_range=SCALE_RANGE,
    stain_jitter=0.05,
    hsv_jitter=0.0,
    normalise=False,
    rotate=True,
    flip=True,
    roles=None,
):
    """The shared augmentation and batching of a ``patch_stream`` (cut with ``max_scale=scale_range[1]``)."""
    check_batch_size(batch_size)
    return augment_and_batch(
        stream,
        batch_size=batch_size,
        roles=roles,
        seed=seed + 7,
        crop_size=patch_size,
        scale_range=scale_range,
        positive_fraction=0.0,  # replaced per patch by its "centre" flag
        stain_jitter=stain_jitter,
        hsv_jitter=hsv_jitter,
        rotate=rotate,
        flip=flip,
        normalise=normalise,
    )


def tile_grid(records, tile=512, multiple=32, decoded=True, target_mpp=None):
    """Evaluation tiles covering each image: ``{"image", "mask"}`` of side ``min(tile, image)``.

    Tiles start every ``tile`` pixels and the last row/column is shifted back to
    end at the border, so every pixel is scored (a few twice) and no padding is
    scored. The side is rounded down to a ``multiple`` of the network stride.
    ``target_mpp``: tiles of each image resampled to that pixel size.
    """
    target_mpp = check_target_mpp(target_mpp)

    def tiles_of(example):
        if decoded:
            image, mask = example["image"], example["mask"]
            mask = mask[..., 0] if mask.shape.rank == 3 else mask
        else:
            image, mask = _decode(example)
        if target_mpp is not None:
            image, mask, _ = resample_fields(image, mask, (), example["mpp"], target_mpp)
        height, width = tf.shape(mask)[0], tf.shape(mask)[1]
        side = tf.minimum(tile, tf.minimum(height, width)) // multiple * multiple
        side = tf.maximum(side, multiple)
        image, mask, _ = _pad_to(image, mask, side)
        height, width = tf.shape(mask)[0], tf.shape(mask)[1]
        rows = tf.minimum(tf.range(0, height, side), height - side)
        cols = tf.minimum(tf.range(0, width, side), width - side)
        grid = tf.reshape(tf.stack(tf.meshgrid(rows, cols, indexing="ij"), -1), (-1, 2))
        grid = tf.raw_ops.UniqueV2(x=grid, axis=[0]).y  # a short image repeats its last start
        return tf.data.Dataset.from_tensor_slices(grid).map(
            lambda rc: {
                "image": image[rc[0] : rc[0] + side, rc[1] : rc[1] + side],
                "mask": mask[rc[0] : rc[0] + side, rc[1] : rc[1] + side],
            }
        )

    return records.flat_map(tiles_of)


def tile_layout(height, width, tile=512, multiple=32):
    """``(side, count)`` of the tiles ``tile_grid`` cuts from a ``height`` x ``width`` image (Python mirror)."""
    side = max(min(tile, height, width) // multiple * multiple, multiple)
    height, width = max(height, side), max(width, side)
    return side, len(set(min(r, height - side) for r in range(0, height, side))) * len(
        set(min(c, width - side) for c in range(0, width, side))
    )


def _encoded_sizes(records, target_mpp=None):
    """(height, width) of every encoded image (at ``target_mpp``), read from the file headers (no pixel decoding)."""
    sizes, mpps = [], []
    for encoded, mpp in records.map(lambda e: (e["image"], e["mpp"])).as_numpy_iterator():
        with Image.open(io.BytesIO(encoded)) as img:
            sizes.append((img.size[1], img.size[0]))
        mpps.append(mpp)
    return resampled_sizes(sizes, mpps, target_mpp)


def make_tile_pipeline(records, *, batch_size, tile=512, roles=None, normalise=False, decoded=True, target_mpp=None):
    """Evaluation batches ``(image, targets)`` of ``tile_grid`` tiles (one pass, in order).

    With encoded records (``decoded=False``) the number of batches is computed
    from the image headers and declared, so Keras knows where validation ends
    (an unknown length makes it warn that the input "ran out of data").
    """
    ds = tile_grid(records, tile, decoded=decoded, target_mpp=target_mpp)
    ds = ds.map(lambda e: _plain(e, normalise), num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda e: _to_model_inputs(e, roles), num_parallel_calls=AUTOTUNE)
    # Tiles of different images may differ in size (small images): batch only equal sizes.
    ds = ds.batch(1) if batch_size == 1 else _batch_by_shape(ds, batch_size)
    if not decoded:
        per_side = {}
        for height, width in _encoded_sizes(records, target_mpp):
            side, count = tile_layout(height, width, tile)
            per_side[side] = per_side.get(side, 0) + count
        batches = sum(-(-count // batch_size) for count in per_side.values())
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.prefetch(AUTOTUNE)


def _batch_by_shape(ds, batch_size):
    def key(image, _):
        return tf.cast(tf.shape(image)[0] * 100_000 + tf.shape(image)[1], tf.int64)

    return ds.group_by_window(key, lambda _, w: w.batch(batch_size), window_size=batch_size)
