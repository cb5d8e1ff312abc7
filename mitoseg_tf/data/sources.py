"""Named data sources: ``load_source(name, split)`` -> dataset of ``{"image", "mask", ...}``,
and ``make_data`` -> the batches a model trains or is scored on.

- ``synthetic``: the built-in procedural H&E set, generated in memory.
- ``synthetic_tfds``: the same set through its TensorFlow Datasets builder.
- the public formats (``folder``, ``mitos12``, ``mitos_atypia14``, ``tupac16``,
  ``midog``, ``amibr``, ``monuseg``): TFDS builders over the files in
  ``data_dir`` (see ``mitoseg_tf.data.builders``). Their images can be large,
  so training streams patches (``patches.make_patch_pipeline``) and
  evaluation scores a grid of tiles covering each image.
- ``mixture``: training patches drawn from several of those by weight,
  validation (and test) on another (``mitoseg_tf.data.mixture``; the mitosis recipe).

``target_mpp``: every image (mask, centres and hard negatives with it) is
resampled from its own pixel size to this one (``mitoseg_tf.data.resolution``);
None keeps each source's own.

Imports point one way: this module uses ``mixture``, ``builders``, the
pipelines and the formats; none of them imports it.
"""

import difflib

from mitoseg_tf.data import mixture, synthetic
from mitoseg_tf.data.builders import load_dataset, split_ids
from mitoseg_tf.data.formats import FORMATS
from mitoseg_tf.data.patches import make_patch_pipeline, make_tile_pipeline
from mitoseg_tf.data.pipeline import check_augment, from_arrays, make_pipeline
from mitoseg_tf.data.resolution import check_target_mpp, resample_example
from mitoseg_tf.data.synthetic_tfds import load_synthetic_tfds

SOURCES = ("synthetic", "synthetic_tfds", "mixture") + tuple(FORMATS)
# The synthetic tiles are drawn at roughly 0.5 um/px (synthetic.py); they carry no mpp of their own.
SYNTHETIC_MPP = 0.5


def check_source(name):
    """Raise the unknown-source error early, before any run folder or model is made."""
    if name not in SOURCES:
        close = difflib.get_close_matches(str(name), SOURCES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown data source {name!r}; available: {', '.join(SOURCES)}.{hint}")


def is_large_image_source(name):
    return name in FORMATS or name == "mixture"


def _at_resolution(ds, name, target_mpp):
    if target_mpp is None:
        return ds
    if name in ("synthetic", "synthetic_tfds"):
        ds = ds.map(lambda e: dict(e, mpp=SYNTHETIC_MPP))
    return ds.map(lambda e: resample_example(e, target_mpp))


def load_source(
    name="synthetic",
    split="train",
    *,
    data_dir=None,
    num_examples=None,
    size=256,
    seed=0,
    decode=True,
    target_mpp=None,
    **options,
):
    """Load split ``split`` of data source ``name`` as a ``tf.data.Dataset``.

    ``options`` go to the dataset builder (``radius_um``, ``refine``,
    ``prepared_dir``, reader options such as ``mpp`` for ``folder``).
    ``target_mpp``: decoded examples resampled to this pixel size (their ``mpp`` becomes it).
    """
    check_source(name)
    target_mpp = check_target_mpp(target_mpp)
    if target_mpp is not None and not decode:
        raise ValueError(
            "load_source: target_mpp resamples decoded images; encoded records (decode=False) are "
            "resampled by the patch and tile pipelines (their target_mpp)."
        )
    if name == "synthetic":
        if options:
            raise ValueError(f"the synthetic source takes no dataset options; got {sorted(options)}.")
        images, masks = synthetic.load_arrays(split, num_examples=num_examples, size=size, seed=seed)
        return _at_resolution(from_arrays(images, masks), name, target_mpp)
    if name == "synthetic_tfds":
        ds = load_synthetic_tfds(split, data_dir)
    elif name == "mixture":
        ds = mixture.load_split(options, split, data_dir, decode=decode)
    else:
        # Splits never depend on the training seed: every seed of a comparison scores the same slides.
        ds = load_dataset(name, split, data_dir, decode=decode, **options)
    ds = ds if num_examples is None else ds.take(num_examples)
    return _at_resolution(ds, name, target_mpp)


def make_data(
    name,
    split,
    *,
    training,
    batch_size,
    data_dir=None,
    crop_size=None,
    seed=0,
    positive_fraction=0.5,
    roles=None,
    num_examples=None,
    eval_tile=512,
    normalise=False,
    augment=None,
    target_mpp=None,
    **options,
):
    """Batches of ``(image, targets)`` of one split, for ``fit`` (``training=True``) or ``evaluate``.

    ``augment``: training augmentation strengths (``pipeline.AUGMENT_OPTIONS``).
    ``target_mpp``: microns per pixel every image is resampled to (None: each source's own).
    """
    augment = check_augment(augment)
    target_mpp = check_target_mpp(target_mpp)
    if not is_large_image_source(name):
        source = load_source(
            name, split, data_dir=data_dir, num_examples=num_examples, seed=seed, target_mpp=target_mpp, **options
        )
        if training:
            return make_pipeline(
                source,
                training=True,
                batch_size=batch_size,
                crop_size=crop_size,
                seed=seed,
                positive_fraction=positive_fraction,
                roles=roles,
                normalise=normalise,
                **augment,
            )
        return make_pipeline(source, training=False, batch_size=batch_size, roles=roles, normalise=normalise)

    if training and name == "mixture":
        return mixture.make_training_pipeline(
            options,
            data_dir,
            batch_size=batch_size,
            patch_size=crop_size or 256,
            seed=seed,
            roles=roles,
            normalise=normalise,
            positive_fraction=positive_fraction,
            target_mpp=target_mpp,
            **augment,
        )
    if training:
        records = load_source(
            name, split, data_dir=data_dir, num_examples=num_examples, seed=seed, decode=False, **options
        )
        return make_patch_pipeline(
            records,
            batch_size=batch_size,
            patch_size=crop_size or 256,
            seed=seed,
            positive_fraction=positive_fraction,
            roles=roles,
            normalise=normalise,
            target_mpp=target_mpp,
            **augment,
        )
    records = load_source(name, split, data_dir=data_dir, num_examples=num_examples, seed=seed, decode=False, **options)
    return make_tile_pipeline(
        records,
        batch_size=batch_size,
        tile=eval_tile,
        roles=roles,
        normalise=normalise,
        decoded=False,
        target_mpp=target_mpp,
    )


def split_manifest(name, *, data_dir=None, num_examples=None, seed=0, size=256, **options):
    """What each split of source ``name`` holds, for a run's record.

    Public datasets: the image ids per split (from the annotations; no pixels
    read). Synthetic: the tile count and the seed of every tile per split, which
    regenerate the tiles exactly. ``synthetic_tfds`` is the synthetic set's
    default tiles.
    """
    check_source(name)
    if name in ("synthetic", "synthetic_tfds"):
        counts = {s: synthetic._count(s, num_examples) for s in synthetic.SPLITS}
        return {
            s: {"tiles": n, "size": size, "tile_seeds": [synthetic.tile_seed(seed, s, i) for i in range(n)]}
            for s, n in counts.items()
        }
    if name == "mixture":
        return mixture.manifest(options, data_dir)
    return {s: ids[:num_examples] for s, ids in split_ids(name, data_dir, **options).items()}
