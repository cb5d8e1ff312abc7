"""``mixture``: training patches drawn from several datasets, validation on another.

The mitosis recipe (``zoo/recipes/mitosis_unet.yaml``) has no single dataset
with both figures and tissue around them to train on: positives come from the
AMi-Br crops, negatives from MoNuSeg tissue, and validation is the MITOS-2012
fields. A mixture says so in the run's ``data_options``::

    data: mixture
    data_dir: ../shared/data          # root of the components' relative data_dir
    data_options:
      train:
        - {data: amibr, data_dir: amibr, weight: 0.5, positive_fraction: 1.0}
        - {data: monuseg, data_dir: monuseg/train, weight: 0.5, background_only: true}
      validation: {data: mitos12, data_dir: mitos12_dev}

Training component keys:

- ``data`` (a public format), ``data_dir`` (relative to the run's ``data_dir``),
  ``split`` (default ``all``), ``weight`` (share of the patches; normalised);
- ``background_only``: every pixel is background (tissue used as negatives: MoNuSeg
  masks mark nuclei, not mitoses);
- ``exclude_um``: drop patches with a labelled point within this many microns
  (negatives cut from images whose figures are marked by points only);
- ``positive_fraction`` / ``hard_negative_fraction``: where its patches go
  (``patches.patch_stream``); ``options``: dataset options (``radius_um``,
  ``refine``, ``split_ids``, reader options);
- ``hard_negatives: {from_run: RUN, oversample: k}``: a first model's false
  figures on these frames (``mitoseg_tf.data.hard_negatives``) join the frames'
  hard negatives, and the hard-negative share is multiplied by ``k``;
- ``data_dir`` may be a list of folders for a format that reads several
  (AMi-Br's crops shared in parts: ``[amibr, amibr_rest]``).

``validation`` and ``test``: ``data``, ``data_dir``, ``split`` (default
``all``), ``options``. Every component's patches share one side, so a mixture
trains like any other large-image source; all randomness is seeded. With a
``target_mpp`` (``RunConfig.target_mpp``) every component's images are brought
to that pixel size before patches are cut (``mitoseg_tf.data.resolution``).
"""

import os

import tensorflow as tf

from mitoseg_tf.data import hard_negatives
from mitoseg_tf.data.builders import load_dataset, split_ids
from mitoseg_tf.data.formats import FORMATS
from mitoseg_tf.data.patches import SCALE_RANGE, augment_patches, patch_stream

TRAIN_KEYS = {
    "data",
    "data_dir",
    "split",
    "weight",
    "background_only",
    "exclude_um",
    "positive_fraction",
    "hard_negative_fraction",
    "options",
    "hard_negatives",
}
EVAL_KEYS = {"data", "data_dir", "split", "options"}
SPEC_KEYS = {"train", "validation", "test", "prepared_dir"}


def _check_component(component, where, allowed):
    if not isinstance(component, dict):
        raise ValueError(f"mixture {where}: expected a mapping with keys {sorted(allowed)}; got {component!r}.")
    unknown = sorted(set(component) - allowed)
    if unknown:
        raise ValueError(f"mixture {where}: unknown key(s) {unknown}; accepted: {', '.join(sorted(allowed))}.")
    if component.get("data") not in FORMATS:
        raise ValueError(
            f"mixture {where}: 'data' must be one of the public formats ({', '.join(FORMATS)}); got {component.get('data')!r}."
        )
    folders = component.get("data_dir")
    if (
        not folders
        or not isinstance(folders, (str, list))
        or (isinstance(folders, list) and not all(isinstance(f, str) and f for f in folders))
    ):
        raise ValueError(
            f"mixture {where}: 'data_dir' is required: the folder of {component['data']}'s files (or a list of folders); "
            f"got {folders!r}."
        )
    if (
        isinstance(folders, list)
        and len(folders) > 1
        and not getattr(FORMATS[component["data"]], "SEVERAL_FOLDERS", False)
    ):
        several = [n for n, m in FORMATS.items() if getattr(m, "SEVERAL_FOLDERS", False)]
        raise ValueError(
            f"mixture {where}: {component['data']} reads one folder; several are read by {', '.join(several)}."
        )
    if not isinstance(component.get("options", {}), dict):
        raise ValueError(
            f"mixture {where}: 'options' must be a mapping of dataset options; got {component['options']!r}."
        )


def check_spec(spec):
    """Raise one clear error for a malformed mixture spec (``RunConfig.data_options``); returns it."""
    if not isinstance(spec, dict) or "train" not in spec or "validation" not in spec:
        raise ValueError(
            "data 'mixture' needs data_options with 'train' (a list of components) and 'validation' (one dataset); "
            f"got {spec!r}. See mitoseg_tf/data/mixture.py."
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"mixture: unknown key(s) {unknown}; accepted: {', '.join(sorted(SPEC_KEYS))}.")
    if not isinstance(spec["train"], list) or not spec["train"]:
        raise ValueError(f"mixture 'train' must be a non-empty list of components; got {spec['train']!r}.")
    for index, component in enumerate(spec["train"]):
        where = f"train[{index}]"
        _check_component(component, where, TRAIN_KEYS)
        weight = component.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight <= 0:
            raise ValueError(f"mixture {where}: 'weight' must be a positive number; got {weight!r}.")
        if component.get("exclude_um") is not None and not component.get("background_only"):
            raise ValueError(
                f"mixture {where}: 'exclude_um' cuts negatives away from the points, so it needs background_only: true."
            )
        if component.get("hard_negatives") is not None:
            hard_negatives.check_option(component["hard_negatives"], f"mixture {where}")
    for split in ("validation", "test"):
        if spec.get(split) is not None:
            _check_component(spec[split], split, EVAL_KEYS)
    return spec


def _folders(component, data_dir):
    folders = component["data_dir"] if isinstance(component["data_dir"], list) else [component["data_dir"]]
    return [os.path.join(data_dir, f) if data_dir else f for f in folders]


def _folder(component, data_dir):
    return _folders(component, data_dir)[0]


def _dataset_options(component, spec, data_dir=None):
    prepared = {"prepared_dir": spec["prepared_dir"]} if spec.get("prepared_dir") else {}
    # Further folders travel as a reader option, absolute so the prepared cache's key names the files.
    more = _folders(component, data_dir)[1:]
    extra = {"extra_dirs": [os.path.abspath(f) for f in more]} if more else {}
    return {**prepared, **extra, **component.get("options", {})}


def _reader_options(component, data_dir):
    return {k: v for k, v in _dataset_options(component, {}, data_dir).items() if k != "prepared_dir"}


def evaluation_component(spec, split):
    check_spec(spec)
    if split not in ("validation", "test") or spec.get(split) is None:
        have = [s for s in ("validation", "test") if spec.get(s) is not None]
        raise ValueError(f"mixture: no {split!r} dataset; it has train, {', '.join(have)}.")
    return spec[split]


def load_split(spec, split, data_dir=None, *, decode=True):
    """The validation or test dataset of a mixture (its records, like ``builders.load_dataset``)."""
    component = evaluation_component(spec, split)
    return load_dataset(
        component["data"],
        component.get("split", "all"),
        _folder(component, data_dir),
        decode=decode,
        **_dataset_options(component, spec, data_dir),
    )


def component_stream(spec, index, data_dir=None, *, patch_size, seed, positive_fraction=0.5, target_mpp=None):
    """The patch stream of training component ``index`` (``patches.patch_stream`` patches, before augmentation)."""
    component = spec["train"][index]
    where = f"mixture train[{index}]"
    records = load_dataset(
        component["data"],
        component.get("split", "all"),
        _folder(component, data_dir),
        decode=False,
        **_dataset_options(component, spec, data_dir),
    )
    positives = component.get("positive_fraction", positive_fraction)
    # patch_stream's default share, where the component's own positive share leaves room for it
    negatives = component.get("hard_negative_fraction", min(0.1, 1.0 - positives))
    if component.get("hard_negatives") is not None:
        from_run, oversample = hard_negatives.check_option(component["hard_negatives"], where)
        mined = hard_negatives.load_hard_negatives(from_run)
        hard_negatives.check_ids(mined, _ids(component, data_dir), where)
        records = hard_negatives.add_mined(records, mined)
        negatives = min(negatives * oversample, 1.0 - positives)
    return patch_stream(
        records,
        patch_size=patch_size,
        seed=seed + 7919 * index,
        positive_fraction=positives,
        hard_negative_fraction=negatives,
        background_only=bool(component.get("background_only", False)),
        exclude_um=component.get("exclude_um"),
        max_scale=SCALE_RANGE[1],
        target_mpp=target_mpp,
    )


def make_training_pipeline(
    spec,
    data_dir=None,
    *,
    batch_size,
    patch_size,
    seed,
    roles=None,
    normalise=False,
    positive_fraction=0.5,
    target_mpp=None,
    **augment,
):
    """Training batches: each component's patch stream, drawn by weight, then the shared augmentation."""
    check_spec(spec)
    streams, weights = [], []
    for index, component in enumerate(spec["train"]):
        streams.append(
            component_stream(
                spec,
                index,
                data_dir,
                patch_size=patch_size,
                seed=seed,
                positive_fraction=positive_fraction,
                target_mpp=target_mpp,
            )
        )
        weights.append(float(component.get("weight", 1.0)))
    total = sum(weights)
    mixed = tf.data.Dataset.sample_from_datasets(streams, weights=[w / total for w in weights], seed=seed)
    return augment_patches(
        mixed, batch_size=batch_size, patch_size=patch_size, seed=seed, roles=roles, normalise=normalise, **augment
    )


def _ids(component, data_dir):
    splits = split_ids(component["data"], _folder(component, data_dir), **_reader_options(component, data_dir))
    chosen = component.get("split", "all")
    return sorted(i for name, names in splits.items() if chosen in ("all", name) for i in names)


def manifest(spec, data_dir=None):
    """Image ids of every component (of its chosen split), for the run record."""
    check_spec(spec)
    out = {f"train[{i}] {c['data']}": _ids(c, data_dir) for i, c in enumerate(spec["train"])}
    for split in ("validation", "test"):
        if spec.get(split) is not None:
            out[split] = _ids(spec[split], data_dir)
    return out
