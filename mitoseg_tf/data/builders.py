"""tensorflow-datasets builders for the public formats (manual download only).

One builder per format in ``mitoseg_tf.data.formats`` (``folder``, ``mitos12``,
``mitos_atypia14``, ``tupac16``, ``midog``, ``amibr``, ``monuseg``, ``voc``). The user
points ``manual_dir`` (``--data-dir``) at the files they obtained; nothing is
downloaded. Each example holds the image, the mask, the object centroids
(row, col), hard negatives, and metadata (id, slide, microns per pixel,
scanner, tumour type, label, the class name of each point). Splits are grouped by slide (``splits.py``).

The config name encodes the mask options and a digest of the manual folder
and reader options, so preparing the same files twice reuses the cache and
different files never collide.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from mitoseg_tf.data import formats
from mitoseg_tf.data.points import DEFAULT_RADIUS_UM
from mitoseg_tf.data.splits import DEFAULT_FRACTIONS, SPLITS, split_records

DATA_VERSION = "1.1.0"


@dataclasses.dataclass
class MitosisConfig(tfds.core.BuilderConfig):
    """Where the files are and how point labels become masks."""

    manual_dir: str = ""
    radius_um: float = DEFAULT_RADIUS_UM
    refine: bool = False
    fractions: tuple = DEFAULT_FRACTIONS
    seed: int = 0
    split_ids: dict | None = None
    reader_options: dict = dataclasses.field(default_factory=dict)


def make_config(
    manual_dir,
    *,
    radius_um=DEFAULT_RADIUS_UM,
    refine=False,
    fractions=DEFAULT_FRACTIONS,
    seed=0,
    split_ids=None,
    **reader_options,
):
    """A ``MitosisConfig`` whose name identifies the files and options (``split_ids``: see ``split_records``)."""
    key = json.dumps(
        [os.path.abspath(manual_dir), radius_um, refine, list(fractions), seed, split_ids, reader_options],
        sort_keys=True,
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return MitosisConfig(
        name=f"r{radius_um:g}um_{'hed' if refine else 'disk'}_{digest}",
        manual_dir=os.path.abspath(manual_dir),
        radius_um=float(radius_um),
        refine=bool(refine),
        fractions=tuple(fractions),
        seed=int(seed),
        split_ids={k: list(v) for k, v in split_ids.items()} if split_ids else None,
        reader_options=dict(reader_options),
    )


class _MitosisBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared body of every format's builder; subclasses set ``name`` and ``format``."""

    VERSION = tfds.core.Version(DATA_VERSION)
    RELEASE_NOTES = {"1.0.0": "First release.", "1.1.0": "classes: the class name of each point (VOC)."}
    format = None

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    @property
    def MANUAL_DOWNLOAD_INSTRUCTIONS(self):  # noqa: N802 (tfds' name)
        return f"Place the files in --data-dir: {self.format.EXPECTED}."

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return self.dataset_info_from_configs(
            description=self.format.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "mask": tfds.features.Image(shape=(None, None, 1)),
                    "points": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
                    "negatives": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
                    "id": text,
                    "slide": text,
                    "mpp": tfds.features.Scalar(dtype=np.float32),
                    "scanner": text,
                    "tumour_type": text,
                    "label": text,
                    "classes": tfds.features.Sequence(text),
                }
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        records = self.format.read(cfg.manual_dir, **cfg.reader_options)
        splits = split_records(records, cfg.fractions, cfg.seed, cfg.split_ids)
        return {name: self._generate_examples(recs) for name, recs in splits.items() if recs}

    def _generate_examples(self, records):
        cfg = self.builder_config
        for rec in records:
            ex = formats.load_example(rec, radius_um=cfg.radius_um, refine=cfg.refine)
            ex["mask"] = ex["mask"][..., None]
            yield rec.id, ex


def _builder_class(fmt):
    cls_name = "".join(part.title() for part in fmt.NAME.split("_")) + "Builder"
    return type(
        cls_name, (_MitosisBuilder,), {"name": fmt.NAME, "format": fmt, "__doc__": fmt.__doc__, "__module__": __name__}
    )


BUILDERS = {name: _builder_class(fmt) for name, fmt in formats.FORMATS.items()}


READER_SKIPS = ("radius_um", "refine", "prepared_dir", "fractions", "seed", "split_ids")


def split_ids(name, data_dir, **options):
    """``{split: [image ids]}`` of dataset ``name`` with ``options`` (annotations only, no pixels read)."""
    reader = {k: v for k, v in options.items() if k not in READER_SKIPS}
    records = formats.read_records(name, data_dir, **reader)
    splits = split_records(
        records, options.get("fractions", DEFAULT_FRACTIONS), options.get("seed", 0), options.get("split_ids")
    )
    return {s: [r.id for r in recs] for s, recs in splits.items()}


def get_builder(name, data_dir, *, prepared_dir=None, **config_options):
    """The TFDS builder of dataset ``name`` reading the files in ``data_dir``.

    ``prepared_dir``: where TFDS writes the prepared records (default
    ``$MITOSEG_PREPARED_DIR`` or ``~/tensorflow_datasets``).
    """
    formats.get_format(name)  # unknown names: one clear error listing the known ones
    formats.record.check_manual_dir(data_dir, name, formats.get_format(name).EXPECTED)
    prepared_dir = prepared_dir or os.environ.get("MITOSEG_PREPARED_DIR")
    return BUILDERS[name](config=make_config(data_dir, **config_options), data_dir=prepared_dir)


def prepare(name, data_dir, **options):
    """Read, check and write dataset ``name`` once (TFDS shows a progress bar); returns the builder."""
    builder = get_builder(name, data_dir, **options)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=builder.builder_config.manual_dir)
    )
    return builder


def available_splits(builder):
    return [s for s in SPLITS if s in builder.info.splits]


def load_dataset(name, split, data_dir, *, decode=True, **options):
    """Split ``split`` (``train``, ``validation``, ``test`` or ``all``) of dataset ``name`` as tf.data.

    Prepares the dataset first if needed. ``decode=False`` leaves ``image`` and
    ``mask`` as encoded bytes, for the patch stream that decodes each image once.
    """
    builder = prepare(name, data_dir, **options)
    have = available_splits(builder)
    if split == "all":
        split = "+".join(have)
    elif split not in have:
        raise ValueError(
            f"Dataset {name!r} has no {split!r} split here (its slides went to {', '.join(have)}); "
            "choose one of those or 'all'."
        )
    decoders = None if decode else {"image": tfds.decode.SkipDecoding(), "mask": tfds.decode.SkipDecoding()}
    return builder.as_dataset(split=split, decoders=decoders)
