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
"""

from mitoseg_tf.data.formats import FORMATS

SOURCES = ("synthetic", "synthetic_tfds", "mixture") + tuple(FORMATS)


def check_source(name):
    """Raise the unknown-source error early, before any run folder or model is made."""
    if name not in SOURCES:
        import difflib

        close = difflib.get_close_matches(str(name), SOURCES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown data source {name!r}; available: {', '.join(SOURCES)}.{hint}")


def is_large_image_source(name):
    return name in FORMATS or name == "mixture"


def load_source(name="synthetic", split="train", *, data_dir=None, num_examples=None, size=256, seed=0, decode=True, **options):
    """Load split ``split`` of data source ``name`` as a ``tf.data.Dataset``.

    ``options`` go to the dataset builder (``radius_um``, ``refine``,
    ``prepared_dir``, reader options such as ``mpp`` for ``folder``).
    """
    check_source(name)
    if name == "synthetic":
        from mitoseg_tf.data import synthetic
        from mitoseg_tf.data.pipeline import from_arrays

        if options:
            raise ValueError(f"the synthetic source takes no dataset options; got {sorted(options)}.")
        images, masks = synthetic.load_arrays(split, num_examples=num_examples, size=size, seed=seed)
        return from_arrays(images, masks)
    if name == "synthetic_tfds":
        from mitoseg_tf.data.synthetic_tfds import load_synthetic_tfds

        ds = load_synthetic_tfds(split, data_dir)
    elif name == "mixture":
        from mitoseg_tf.data import mixture

        ds = mixture.load_split(options, split, data_dir, decode=decode)
    else:
        from mitoseg_tf.data.builders import load_dataset

        # Splits never depend on the training seed: every seed of a comparison scores the same slides.
        ds = load_dataset(name, split, data_dir, decode=decode, **options)
    return ds if num_examples is None else ds.take(num_examples)


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
    **options,
):
    """Batches of ``(image, targets)`` of one split, for ``fit`` (``training=True``) or ``evaluate``.

    ``augment``: training augmentation strengths (``pipeline.AUGMENT_OPTIONS``).
    """
    from mitoseg_tf.data.pipeline import check_augment, make_pipeline

    augment = check_augment(augment)
    if not is_large_image_source(name):
        source = load_source(name, split, data_dir=data_dir, num_examples=num_examples, seed=seed, **options)
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

    from mitoseg_tf.data.patches import make_patch_pipeline, make_tile_pipeline

    if training and name == "mixture":
        from mitoseg_tf.data import mixture

        return mixture.make_training_pipeline(
            options, data_dir, batch_size=batch_size, patch_size=crop_size or 256, seed=seed, roles=roles,
            normalise=normalise, positive_fraction=positive_fraction, **augment,
        )  # fmt: skip
    if training:
        records = load_source(name, split, data_dir=data_dir, num_examples=num_examples, seed=seed, decode=False, **options)
        return make_patch_pipeline(
            records,
            batch_size=batch_size,
            patch_size=crop_size or 256,
            seed=seed,
            positive_fraction=positive_fraction,
            roles=roles,
            normalise=normalise,
            **augment,
        )
    records = load_source(name, split, data_dir=data_dir, num_examples=num_examples, seed=seed, decode=False, **options)
    return make_tile_pipeline(records, batch_size=batch_size, tile=eval_tile, roles=roles, normalise=normalise, decoded=False)


def split_manifest(name, *, data_dir=None, num_examples=None, seed=0, size=256, **options):
    """What each split of source ``name`` holds, for a run's record.

    Public datasets: the image ids per split (from the annotations; no pixels
    read). Synthetic: the tile count and the seed of every tile per split, which
    regenerate the tiles exactly. ``synthetic_tfds`` is the synthetic set's
    default tiles.
    """
    check_source(name)
    if name in ("synthetic", "synthetic_tfds"):
        from mitoseg_tf.data import synthetic

        counts = {s: synthetic._count(s, num_examples) for s in synthetic.SPLITS}
        return {
            s: {"tiles": n, "size": size, "tile_seeds": [synthetic.tile_seed(seed, s, i) for i in range(n)]}
            for s, n in counts.items()
        }
    if name == "mixture":
        from mitoseg_tf.data import mixture

        return mixture.manifest(options, data_dir)
    from mitoseg_tf.data.formats import read_records
    from mitoseg_tf.data.splits import DEFAULT_FRACTIONS, split_records

    reader = {k: v for k, v in options.items() if k not in ("radius_um", "refine", "prepared_dir", "fractions", "seed", "split_ids")}
    records = read_records(name, data_dir, **reader)
    splits = split_records(records, options.get("fractions", DEFAULT_FRACTIONS), options.get("seed", 0), options.get("split_ids"))
    return {s: [r.id for r in recs][:num_examples] for s, recs in splits.items()}
