"""Named data sources: ``load_source(name, split)`` -> dataset of ``{"image", "mask"}``."""

SOURCES = ("synthetic", "synthetic_tfds")


def check_source(name):
    """Raise the unknown-source error early, before any run folder or model is made."""
    if name not in SOURCES:
        raise ValueError(f"Unknown data source {name!r}; available: {', '.join(SOURCES)}.")


def load_source(name="synthetic", split="train", *, data_dir=None, num_examples=None, size=256, seed=0):
    """Load split ``split`` of data source ``name`` as a ``tf.data.Dataset``.

    - ``synthetic``: the built-in procedural H&E set, generated in memory.
    - ``synthetic_tfds``: the same set through its TensorFlow Datasets builder
      (prepared once under ``data_dir``).
    """
    if name == "synthetic":
        from mitoseg_tf.data import synthetic
        from mitoseg_tf.data.pipeline import from_arrays

        images, masks = synthetic.load_arrays(split, num_examples=num_examples, size=size, seed=seed)
        return from_arrays(images, masks)
    if name == "synthetic_tfds":
        from mitoseg_tf.data.synthetic_tfds import load_synthetic_tfds

        ds = load_synthetic_tfds(split, data_dir)
        return ds if num_examples is None else ds.take(num_examples)
    raise ValueError(f"Unknown data source {name!r}; available: {', '.join(SOURCES)}.")
