"""Hard-negative round: a first model's false figures become patch centres of the next training.

A detector trained once (e.g. ``zoo/recipes/mitosis_v2.yaml``) is run over its
own training frames; every figure it finds farther than ``match_distance_um``
from every true centre is a look-alike it confuses with a mitosis (a dark
apoptotic body, a lymphocyte, a tangentially cut nucleus). Those centres are
saved beside the run (``hard_negatives.json``) and a mixture component of the
next round names them::

    - {data: voc, data_dir: atypia14_train, split: train, options: {...},
       hard_negatives: {from_run: runs/mitosis_v2, oversample: 4}}

``oversample: k`` multiplies the component's hard-negative share of patches
(``hard_negative_fraction``, 0.1 by default) by ``k``, capped at what the
figure-centred share leaves; the mined centres join the frame's own hard
negatives (MITOS-ATYPIA-14's ``not_mitosis`` points), so a mined look-alike is
cut about ``k`` times as often as before. Round 1, round 2::

    from mitoseg_tf.detector import Detector
    from mitoseg_tf.data.sources import load_source
    from mitoseg_tf.data.hard_negatives import mine_hard_negatives, save_hard_negatives
    frames = load_source("voc", "train", data_dir=".../atypia14_train", preset="atypia14_train", split_ids=...)
    mined = mine_hard_negatives(Detector.from_run("runs/mitosis_v2"), frames.as_numpy_iterator())
    save_hard_negatives("runs/mitosis_v2", mined)

Coordinates are (row, col) pixels of each frame as stored (its own ``mpp``);
the patch stream scales them with the frame when it resamples to ``target_mpp``.
"""

import json
import os

import numpy as np
import tensorflow as tf

HARD_NEGATIVES_FILE = "hard_negatives.json"
OPTION_KEYS = {"from_run", "oversample"}
EMPTY = np.zeros((0, 2), np.float32)


def false_figures(predicted, truth, max_distance_px):
    """The ``predicted`` (N, 2) centres farther than ``max_distance_px`` from every ``truth`` centre.

    Not the one-to-one matching of scoring: a second detection on one figure is a
    false positive there, but its centre lies on a mitosis and must not become a negative.
    """
    predicted = np.asarray(predicted, np.float32).reshape(-1, 2)
    truth = np.asarray(truth, np.float32).reshape(-1, 2)
    if not len(predicted) or not len(truth):
        return predicted
    distance = np.sqrt(((predicted[:, None, :] - truth[None, :, :]) ** 2).sum(-1))
    return predicted[(distance > max_distance_px).all(axis=1)]


def _centres(found):
    """(N, 2) (row, col) from what a detector returns: an array of centres, figures, or a prediction."""
    figures = getattr(found, "figures", found)
    if isinstance(figures, np.ndarray):
        return figures.astype(np.float32).reshape(-1, 2)
    return np.asarray([getattr(f, "centroid", f) for f in figures], np.float32).reshape(-1, 2)


def _text(value):
    value = value.item() if isinstance(value, np.ndarray) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def mine_hard_negatives(detector, examples, *, match_distance_um=5.0, mpp=None):
    """``{image id: (K, 2) float32}`` of the false figures ``detector`` finds in ``examples``.

    Args:
        detector: a ``mitoseg_tf.detector.Detector`` (its ``predict(image, mpp)``
            resamples to the resolution it was trained at) or a callable
            ``detect(image, mpp)`` returning (N, 2) (row, col) centres or figures.
        examples: decoded examples (dicts with ``image``, ``points``, ``id`` and
            ``mpp``), e.g. ``load_source(...).as_numpy_iterator()``.
        match_distance_um: a figure within this many microns of a true centre is
            that figure, not a negative (the 5-um rule of the detection scores).
        mpp: pixel size of examples that carry no ``mpp``.

    Every example's id is in the result, empty when the detector made no false
    figure there, so the file records which frames were mined.
    """
    detect = detector.predict if hasattr(detector, "predict") else detector
    mined = {}
    for index, example in enumerate(examples):
        missing = {"image", "points", "id"} - set(example)
        if missing or ("mpp" not in example and mpp is None):
            raise ValueError(
                f"mine_hard_negatives: example {index} lacks {sorted(missing) or ['mpp']}; examples need image, points, "
                "id and mpp (or the mpp argument)."
            )
        image_mpp = float(np.asarray(example["mpp"])) if "mpp" in example else float(mpp)
        name = _text(example["id"])
        if name in mined:
            raise ValueError(
                f"mine_hard_negatives: two examples share the id {name!r}; ids pair negatives with frames."
            )
        centres = _centres(detect(np.asarray(example["image"]), image_mpp))
        mined[name] = false_figures(centres, example["points"], match_distance_um / image_mpp)
    if not mined:
        raise ValueError("mine_hard_negatives: no examples were given.")
    return mined


def hard_negatives_path(from_run):
    """``from_run`` itself when it is a file, else ``from_run/hard_negatives.json``."""
    return from_run if os.path.isfile(from_run) else os.path.join(from_run, HARD_NEGATIVES_FILE)


def save_hard_negatives(run_dir, mined, **about):
    """Write ``mined`` as ``run_dir/hard_negatives.json`` (``about``: how it was mined, kept for the record)."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, HARD_NEGATIVES_FILE)
    body = {
        "about": about,
        "negatives": {k: np.asarray(v, np.float32).reshape(-1, 2).tolist() for k, v in mined.items()},
    }
    with open(path, "w") as fh:
        json.dump(body, fh)
    return path


def load_hard_negatives(from_run):
    """``{image id: (K, 2) float32}`` saved by ``save_hard_negatives`` (a run folder or the file)."""
    path = hard_negatives_path(from_run)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"hard_negatives: {path} not found; mine the first run's false figures with "
            "mitoseg_tf.data.hard_negatives.mine_hard_negatives and save_hard_negatives first."
        )
    try:
        with open(path) as fh:
            body = json.load(fh)
        mined = {str(k): np.asarray(v, np.float32).reshape(-1, 2) for k, v in body["negatives"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: not a hard-negatives file ({err}); expected {{'negatives': {{image id: [[row, col], ...]}}}}."
        ) from None
    return mined


def check_option(option, where):
    """The ``hard_negatives`` mapping of a mixture component, checked; returns ``(from_run, oversample)``."""
    if not isinstance(option, dict) or "from_run" not in option:
        raise ValueError(f"{where}: hard_negatives must be a mapping with from_run (and oversample); got {option!r}.")
    unknown = sorted(set(option) - OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: hard_negatives: unknown key(s) {unknown}; accepted: {', '.join(sorted(OPTION_KEYS))}."
        )
    oversample = option.get("oversample", 1)
    if isinstance(oversample, bool) or not isinstance(oversample, (int, float)) or oversample < 1:
        raise ValueError(f"{where}: hard_negatives.oversample must be a number >= 1; got {oversample!r}.")
    if not isinstance(option["from_run"], str) or not option["from_run"]:
        raise ValueError(
            f"{where}: hard_negatives.from_run must be a run folder or a {HARD_NEGATIVES_FILE}; got {option['from_run']!r}."
        )
    return option["from_run"], float(oversample)


def check_ids(mined, ids, where):
    """Refuse mined centres of frames the component does not train on (another split, another folder)."""
    foreign = sorted(set(mined) - set(ids))
    if foreign:
        raise ValueError(
            f"{where}: hard negatives were mined on {len(foreign)} frame(s) this component does not train on, "
            f"e.g. {', '.join(foreign[:3])}; mine the same frames (its split) so no validation frame leaks in."
        )


def add_mined(records, mined):
    """``records`` (tf.data, with ``id`` and ``negatives``) with each frame's mined centres appended to its negatives."""
    names = sorted(mined)
    counts = [len(mined[n]) for n in names] + [0]  # the last entry: frames nothing was mined on
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat = tf.constant(np.concatenate([mined[n] for n in names] + [EMPTY]).astype(np.float32).reshape(-1, 2))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(names or [""], tf.string), tf.range(max(len(names), 1), dtype=tf.int64)
        ),
        default_value=len(names),
    )
    starts, counts = tf.constant(starts), tf.constant(np.asarray(counts, np.int64))

    def add(example):
        row = table.lookup(example["id"])
        extra = flat[starts[row] : starts[row] + counts[row]]
        return dict(example, negatives=tf.concat([tf.cast(example["negatives"], tf.float32), extra], 0))

    return records.map(add)
