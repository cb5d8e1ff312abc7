"""tensorflow-datasets builder for the synthetic mitosis tiles (no download).

Importing this module registers `synthetic_mitosis`, so after it
`tfds.load("synthetic_mitosis/tiny")` also works.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from mitoseg_tf.data import synthetic

_NAME = "synthetic_mitosis"


@dataclasses.dataclass
class SyntheticMitosisConfig(tfds.core.BuilderConfig):
    """Tile size (px), tiles per split and the base seed of `tile_seed`."""

    size: int = 256
    num_examples: dict = dataclasses.field(default_factory=lambda: dict(synthetic.DEFAULT_SIZES))
    seed: int = 0


def _already_registered(name):
    # tfds refuses a second class with the same name, which is what
    # importlib.reload (or a notebook re-run) would define; keep the first.
    registry = getattr(tfds.core.registered, "_DATASET_REGISTRY", {})
    return name in registry


class SyntheticMitosis(tfds.core.GeneratorBasedBuilder, skip_registration=_already_registered(_NAME)):
    """Procedural H&E tiles with binary mitotic-figure masks and centroids."""

    name = _NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticMitosisConfig(name="default", description="256 px tiles, 192/48/48."),
        SyntheticMitosisConfig(
            name="tiny",
            description="64 px tiles, 8/4/4; for tests.",
            size=64,
            num_examples={"train": 8, "validation": 4, "test": 4},
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # tfds' own lookup needs the `importlib_resources` backport, which
        # tensorflow-datasets does not declare; this builder lives in one file.
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    # A plain tensor, not an Image: values are 0/1 labels.
                    "mask": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
                    "points": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
                    "index": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=("image", "mask"),
            # Keep records in index order so they match `generate_split`.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is generated locally
        return {split: self._generate_examples(split) for split in synthetic.SPLITS}

    def _generate_examples(self, split):
        cfg = self.builder_config
        tiles = synthetic.generate_split(split, cfg.num_examples[split], cfg.size, cfg.seed)
        for index, tile in enumerate(tiles):
            yield index, {**tile, "index": index}


def load_synthetic_tfds(split: str, data_dir: str, config: str = "default"):
    """Build (once, under `data_dir`) and return one split as a tf.data.Dataset.

    Elements are dicts with "image" uint8 (H, W, 3), "mask" uint8 (H, W),
    "points" float32 (N, 2) and "index" int64.
    """
    builder = SyntheticMitosis(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    return builder.as_dataset(split=split)
