"""One training run end to end: data -> model -> fit -> evaluate -> run folder.

``train_run`` is what ``mitoseg train`` calls; notebooks can call it too.
"""

import dataclasses
import datetime
import json
import os
import time

import numpy as np

from mitoseg_tf import __version__


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
    budget_minutes: float | None = None  # stop at the epoch that would overrun this much training time
    test_split: str | None = "test"  # None: the dataset's test set is kept elsewhere (e.g. MoNuSeg's)
    eval_tile: int = 512  # side of the tiles that cover each large validation/test image
    recipe: str | None = None  # the recipe file this config came from, for the record
    detection: bool = True  # choose the figure-score threshold on validation, score detection on test


def load_recipe(path, **overrides):
    """A ``RunConfig`` from a YAML recipe (keys = RunConfig fields), with ``overrides`` applied.

    Unknown keys are an error, so a misspelt option cannot be silently ignored.
    """
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"recipe {path} not found.")
    with open(path) as fh:
        values = yaml.safe_load(fh) or {}
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path}: expected a mapping of RunConfig fields; got {type(values).__name__}.")
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"recipe {path}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(fields))}.")
    return RunConfig(**{**values, **overrides, "recipe": path})


def _seed_everything(seed):
    import keras

    keras.utils.set_random_seed(seed)


def _collect_overlays(model, val_data, count):
    from mitoseg_tf.metrics.pixel import labels_from_output
    from mitoseg_tf.training.evaluate import _mask_of, primary_probabilities

    images, masks, preds = [], [], []
    for batch_images, targets in val_data:
        truth = _mask_of(targets)
        # Prefer tiles that contain a mitosis: they are the interesting ones to look at.
        order = np.argsort(-truth.reshape(len(truth), -1).sum(axis=1))
        probs = primary_probabilities(model, np.asarray(batch_images))
        labels = labels_from_output(probs)
        for i in order[: count - len(images)]:
            images.append(np.asarray(batch_images[i]))
            masks.append(truth[i])
            preds.append(labels[i])
        if len(images) >= count:  # batches smaller than `count` contribute in turn
            break
    return images[:count], masks[:count], preds[:count]


def _calibrate_detection(model, config, run_dir):
    """Detection on whole validation images picks the figure-score threshold (saved as detection.json);
    the test split is scored at it. Never tuned on test."""
    from mitoseg_tf.data.sources import load_source
    from mitoseg_tf.detection.evaluation import calibrate, collect_detections, save_detection_settings, source_mpp

    def source(split):
        return load_source(
            config.data, split, data_dir=config.data_dir, num_examples=config.num_examples, seed=config.seed,
            **config.data_options,
        )  # fmt: skip

    options = dict(mpp=source_mpp(config.data))
    val_records, info = collect_detections(model, source("validation"), **options)
    test_records = collect_detections(model, source(config.test_split), **options)[0] if config.test_split else []
    settings = calibrate(val_records, test_records, info)
    if not config.test_split:
        settings["test"] = None
    settings["mpp"] = options["mpp"]
    save_detection_settings(run_dir, settings)
    return settings


def train_run(config: RunConfig, log=print):
    """Train, pick the best checkpoint on validation, evaluate on the test split, write the run folder."""
    from mitoseg_tf.data.sources import make_data
    from mitoseg_tf.training import compile_model, evaluate, fit, format_table, monitor_key, set_precision
    from mitoseg_tf.training.checkpoint import load_checkpoint
    from mitoseg_tf.training.callbacks import TimeBudget
    from mitoseg_tf.training.fit import BATCH_LOG, BEST_CHECKPOINT, EPOCH_LOG
    from mitoseg_tf.training.report import plot_overlays, plot_training_curves
    from mitoseg_tf.training.targets import output_roles
    from mitoseg_tf.zoo import build, get_card

    from mitoseg_tf.data.sources import check_source

    get_card(config.model)  # unknown names fail before any data is generated or folder made
    check_source(config.data)
    precision = set_precision(config.precision)
    _seed_everything(config.seed)
    name = config.run_name or f"{config.model}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = os.path.join(config.output_dir, name)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as fh:
        json.dump({**dataclasses.asdict(config), "resolved_precision": precision, "version": __version__}, fh, indent=2)

    log(f"Run folder: {run_dir}   precision: {precision}")
    width = get_card(config.model).width_arguments(config.base_filters)
    if not width:
        log(f"{config.model} has no base width; base_filters={config.base_filters} does not apply to it")
    model = build(config.model, input_shape=(None, None, 3), **{**width, **config.model_args})
    roles = output_roles(model)
    log(f"Model {config.model}: {model.count_params():,} parameters")

    data = dict(
        data_dir=config.data_dir,
        batch_size=config.batch_size,
        seed=config.seed,
        roles=roles,
        num_examples=config.num_examples,
        normalise=config.stain_normalise,
        **config.data_options,
    )
    train_ds = make_data(
        config.data, "train", training=True, crop_size=config.crop_size, positive_fraction=config.positive_fraction, **data
    )
    val_ds = make_data(config.data, "validation", training=False, eval_tile=config.eval_tile, **data)
    test_ds = (
        make_data(config.data, config.test_split, training=False, eval_tile=config.eval_tile, **data)
        if config.test_split
        else None
    )

    compile_model(model, loss=config.loss, learning_rate=config.learning_rate)
    start = time.time()
    fit(
        model,
        train_ds,
        val_ds,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        run_dir=run_dir,
        tensorboard=config.tensorboard,
        callbacks=[TimeBudget(config.budget_minutes)] if config.budget_minutes else (),
    )
    train_seconds = time.time() - start

    best = load_checkpoint(os.path.join(run_dir, BEST_CHECKPOINT))
    val_results = evaluate(best, val_ds)
    test_results = evaluate(best, test_ds) if test_ds is not None else None
    monitor = monitor_key(model)
    plot_training_curves(
        os.path.join(run_dir, BATCH_LOG), os.path.join(run_dir, EPOCH_LOG), os.path.join(run_dir, "training_curves.png"), monitor
    )
    plot_overlays(
        *_collect_overlays(best, val_ds, config.num_overlays),
        os.path.join(run_dir, "overlays.png"),
        title=f"{config.model}: validation tiles (green truth, red prediction)",
    )
    detection = _calibrate_detection(best, config, run_dir) if config.detection else None
    metrics = {
        "detection": detection,
        "model": config.model,
        "precision": precision,
        "train_seconds": round(train_seconds, 1),
        "validation": val_results,
        "test": test_results,
    }
    with open(os.path.join(run_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    reported, split = (test_results, "test") if test_results is not None else (val_results, "validation")
    table = format_table(reported, title=f"{config.model} on the {config.data} {split} split")
    with open(os.path.join(run_dir, "metrics.md"), "w") as fh:
        fh.write(table + "\n")
    log("")
    log(table)
    val_dice = val_results["model"]["pooled"]["mitosis_dice"]
    base_dice = val_results["all_background"]["pooled"]["mitosis_dice"]
    log(
        f"\nValidation mitosis Dice (pooled): {val_dice:.4f}  vs all-background prediction: {base_dice:.4f}"
        f"   (training took {train_seconds / 60:.1f} min)"
    )
    return run_dir, metrics
