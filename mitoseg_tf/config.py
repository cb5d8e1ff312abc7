"""The run and comparison settings as plain dataclasses, importable without TensorFlow or Keras.

``mitoseg train --help`` and ``mitoseg compare --help`` show these defaults; importing
``mitoseg_tf.training`` for them would load TensorFlow and make every help take seconds.
``mitoseg_tf.training.run.RunConfig`` and ``mitoseg_tf.compare.CompareConfig`` are these classes.
"""

import dataclasses
import math
import numbers
import os
import types

from mitoseg_tf.defaults import DEFAULT_MATCH_DISTANCE_UM

# The paper's two tables; mitoseg_tf.compare.selection checks names against these.
TABLES = ("table1", "table2")


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs; the defaults are the quick CPU schedule (< 10 min on 2 cores)."""

    model: str = "mcsa_unet"
    data: str = "synthetic"
    data_dir: str | None = None
    base_filters: int = 16
    epochs: int = 10
    steps_per_epoch: int = 40
    batch_size: int = 16
    crop_size: int = 128
    learning_rate: float = 1e-3
    loss: str | None = None  # None: the model's own default (cross-entropy; a detector's own losses)
    precision: str = "auto"
    # The policy a recipe's recorded results ran in (a recipe key); "auto" resolves per CPU, and a run whose
    # resolved policy differs says so, because its numbers will not match the recorded ones.
    precision_recorded: str | None = None
    seed: int = 0
    positive_fraction: float = 0.5
    output_dir: str = "runs"
    run_name: str | None = None
    num_overlays: int = 4
    tensorboard: bool = False
    model_args: dict = dataclasses.field(default_factory=dict)
    num_examples: int | None = None  # tiles per split (None: the source's full splits); for quick tests
    # Dataset builder options (radius_um, refine, prepared_dir, reader options such as mpp).
    data_options: dict = dataclasses.field(default_factory=dict)
    stain_normalise: bool = False
    # Training augmentation strengths: stain_jitter (HED, default 0.05), hsv_jitter (hue/saturation, default 0).
    augment: dict = dataclasses.field(default_factory=dict)
    budget_minutes: float | None = None  # stop at the epoch that would overrun this much training time
    test_split: str | None = "test"  # None: the dataset's test set is kept elsewhere (e.g. MoNuSeg's)
    eval_tile: int = 512  # side of the tiles that cover each large validation/test image
    recipe: str | None = None  # the recipe file this config came from, for the record
    detection: bool = True  # choose the figure-score threshold on validation, score detection on test
    # Detection maps averaged over the 8 flips / quarter turns when choosing the settings and scoring test;
    # detection.json records it, so predict and evaluate use the maps the thresholds were chosen on.
    tta: bool = False
    # Start from these weights instead of a random initialisation: a shipped tag ("mitosis"), a .weights.h5
    # file or a run's .keras checkpoint, e.g. to continue a recipe's training at a lower learning rate.
    init_weights: str | None = None
    # Microns per pixel every training and validation image is resampled to from its own (mitoseg_tf.data.resolution),
    # so sources scanned at 0.2273-0.25 um/px show a figure at one scale; None: each source's own pixel size.
    target_mpp: float | None = None

    strategy: str = "none"  # none, mirrored or multi_worker (training.distribute)
    resume: bool = False  # continue the run folder output_dir/run_name from its last completed epoch
    deterministic: bool = True  # TensorFlow op determinism: same seed, bitwise-same run

    def __post_init__(self):
        check_options(self)


# Value rules of the training options, shared by RunConfig and CompareConfig (the fields each has).
AT_LEAST = {
    "epochs": 1,
    "steps_per_epoch": 1,
    "batch_size": 1,
    "crop_size": 16,
    "base_filters": 1,
    "eval_tile": 16,
    "repeats": 1,
    "num_examples": 1,
    "num_overlays": 0,
    "figure_tiles": 0,
}
POSITIVE = ("learning_rate", "budget_minutes", "match_distance_um")  # finite and > 0
FRACTIONS = ("positive_fraction",)  # in [0, 1]

_ACCEPTED = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    dict: "a mapping",
    tuple: "a list",
    list: "a list",
    type(None): "null (None)",
}


def _fits(value, kind):
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind in (tuple, list):
        return isinstance(value, (tuple, list))
    if kind is str:
        return isinstance(value, (str, os.PathLike))  # folders and files may be given as paths
    return isinstance(value, kind)


def check_type(value, annotation, name, where=""):
    """``value`` of a field annotated ``annotation`` (``int``, ``float | None``, ...), else a ValueError naming it.

    ``bool`` is no integer and ``"false"`` no boolean: a YAML or JSON file that
    says ``epochs: "ten"`` or ``"tta": "false"`` is refused, not read as something else.
    """
    kinds = annotation.__args__ if isinstance(annotation, types.UnionType) else (annotation,)
    if not any(_fits(value, kind) for kind in kinds):
        accepted = " or ".join(dict.fromkeys(_ACCEPTED.get(k, getattr(k, "__name__", str(k))) for k in kinds))
        raise ValueError(f"{where}{name} must be {accepted}; got {value!r}.")


def require_fields(entry, names, where):
    """``entry`` a mapping holding every one of ``names``; else a ValueError naming ``where`` and what is missing."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object; got {entry!r}.")
    missing = [n for n in names if n not in entry]
    if missing:
        raise ValueError(
            f"{where}: lacks the field(s) {', '.join(missing)} (has {', '.join(map(str, entry)) or 'none'})."
        )


def check_options(config, where=""):
    """Every field of a dataclass ``config`` of its declared type and within ``AT_LEAST`` / ``POSITIVE`` / ``FRACTIONS``.

    ``where`` prefixes the messages (e.g. ``"recipe r.yaml: "``). Runs before
    any TensorFlow work: ``RunConfig`` and ``CompareConfig`` call it on creation.
    """
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        check_type(value, field.type, field.name, where)
        if value is None:
            continue
        if field.name in AT_LEAST and value < AT_LEAST[field.name]:
            raise ValueError(f"{where}{field.name} must be an integer >= {AT_LEAST[field.name]}; got {value!r}.")
        if field.name in POSITIVE and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{where}{field.name} must be a finite number > 0; got {value!r}.")
        if field.name in FRACTIONS and not 0 <= value <= 1:
            raise ValueError(f"{where}{field.name} must lie in [0, 1]; got {value!r}.")


_RUN = RunConfig()  # the training defaults come from one place: RunConfig's quick CPU schedule


@dataclasses.dataclass
class CompareConfig:
    """What to compare and how; the training defaults are ``RunConfig``'s."""

    output_dir: str = "compare"
    models: tuple = ()  # empty: every model tagged with one of ``tables``
    tables: tuple = TABLES
    repeats: int = 1
    seed: int = 0  # seeds are seed, seed + 1, ..., seed + repeats - 1
    data: str = _RUN.data
    data_dir: str | None = None
    num_examples: int | None = None
    tiny: bool = False  # each card's ``tiny`` overrides (for tests and smoke runs)
    base_filters: int = _RUN.base_filters
    epochs: int = _RUN.epochs
    steps_per_epoch: int = _RUN.steps_per_epoch
    batch_size: int = _RUN.batch_size
    crop_size: int = _RUN.crop_size
    learning_rate: float = _RUN.learning_rate
    loss: str | None = _RUN.loss  # None: cross-entropy for segmentation networks, a detector's own losses
    precision: str = _RUN.precision
    budget_minutes: float | None = None
    match_distance_um: float = DEFAULT_MATCH_DISTANCE_UM
    mpp: float | None = None  # None: the source's own (``detection.evaluation.source_mpp``)
    aggregation: str = "pooled"
    figure_tiles: int = 3

    def __post_init__(self):
        check_options(self)
