"""One training run end to end: data -> model -> fit -> evaluate -> run folder.

``train_run`` is what ``mitoseg train`` calls; notebooks can call it too.
"""

import dataclasses
import datetime
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mitoseg_tf import __version__

# RunConfig lives in mitoseg_tf.config so that `mitoseg train --help` needs no TensorFlow; add fields there.
from mitoseg_tf.config import RunConfig  # noqa: F401  (re-exported)
from mitoseg_tf.inference.resample import check_mpp


def load_recipe(path, **overrides):
    """A ``RunConfig`` from a YAML recipe (keys = RunConfig fields), with ``overrides`` applied.

    Unknown keys are an error, so a misspelt option cannot be silently ignored;
    so are an empty file and a value of the wrong type or range, each message
    naming the recipe and the field.
    """
    return recipe_config(read_recipe(path), path, **overrides)


def read_recipe(path):
    """A recipe file's mapping, as written (``load_recipe`` and ``mitoseg compare --recipe`` read it so)."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"recipe {path} not found.")
    with open(path) as fh:
        try:
            values = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ValueError(f"recipe {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if values is None or values == {}:
        raise ValueError(f"recipe {path} is empty; a recipe sets RunConfig fields, at least model and data.")
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path}: expected a mapping of RunConfig fields; got {type(values).__name__}.")
    return values


def recipe_config(values, path, **overrides):
    """The ``RunConfig`` of a recipe's ``values`` (read from ``path``): unknown keys and pixel sizes checked."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(map(str, set(values) - fields))
    if unknown:
        raise ValueError(f"recipe {path}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(fields))}.")
    check_recipe_pixel_sizes(values, f"recipe {path}")
    try:
        return RunConfig(**{**values, **overrides, "recipe": path})
    except ValueError as err:  # a field of the wrong type or out of range (RunConfig's own checks): name the file
        raise ValueError(f"recipe {path}: {err}") from None


def check_recipe_pixel_sizes(values, where):
    """A recipe's ``target_mpp`` and reader options ``mpp`` (a mixture's components' too) by the one pixel-size rule."""
    if values.get("target_mpp") is not None:
        check_mpp(values["target_mpp"], f"{where}, target_mpp")
    options = values.get("data_options")
    if not isinstance(options, dict):
        return
    named = [("data_options", options)]
    for role, specs in options.items():
        for index, spec in enumerate(specs if isinstance(specs, list) else [specs]):
            if isinstance(spec, dict) and isinstance(spec.get("options"), dict):
                named.append(
                    (f"data_options.{role}{f'[{index}]' if isinstance(specs, list) else ''}.options", spec["options"])
                )
    for name, component in named:
        if component.get("mpp") is not None:
            check_mpp(component["mpp"], f"{where}, {name}.mpp")


def recorded_precision_warning(config, resolved):
    """The warning for a recipe rerun in another precision than its results were recorded in; None if the same."""
    if not config.precision_recorded or config.precision_recorded == resolved:
        return None
    return (
        f"{config.recipe or 'this config'} recorded its results in {config.precision_recorded}; precision "
        f"{config.precision!r} resolves to {resolved} on this machine, so expect other numbers than the recorded ones."
    )


# Keys that may differ between a run folder's config and the config resuming it.
# precision_recorded only describes the recipe's earlier results, and folders made before it existed lack it.
RESUME_MAY_CHANGE = (
    "resume",
    "output_dir",
    "run_name",
    "tensorboard",
    "num_overlays",
    "strategy",
    "deterministic",
    "precision_recorded",
)


def _check_resume(config, run_dir):
    """Fail before any training when ``run_dir`` cannot be continued with ``config``."""
    from mitoseg_tf.training.record import config_differences

    if not config.run_name:
        raise ValueError("resume needs the run folder's name (--run-name) inside --output-dir.")
    path = os.path.join(run_dir, "config.json")
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"Cannot resume: run folder {run_dir!r} does not exist.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Cannot resume: {run_dir!r} has no config.json, so it is not a run folder.")
    with open(path) as fh:
        saved = json.load(fh)
    requested = dataclasses.asdict(config)
    differences = config_differences({k: v for k, v in saved.items() if k in requested}, requested, RESUME_MAY_CHANGE)
    if differences:
        raise ValueError(
            f"Cannot resume {run_dir!r} with a different configuration; differing keys: " + "; ".join(differences)
        )


def _check_fresh_folder(run_dir):
    """Refuse to start a new run in a folder that already holds one (its ``config.json``).

    The epoch and batch logs append, and an earlier run's ``metrics.json`` would
    stand beside this run's ``config.json`` until it is overwritten (or for
    good, if this run fails), so one folder would describe two runs.
    """
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        raise FileExistsError(
            f"run folder {run_dir!r} already holds a run (its config.json). Continue it with --resume, choose "
            "another --run-name, or delete the folder."
        )


def _build_initial(build, config, arguments):
    """The model a run starts from: random, or ``config.init_weights`` (shipped tag, weights file or checkpoint)."""
    start = None if config.resume else config.init_weights  # a resumed run restores its own checkpoint
    if not (start and start.endswith(".keras")):
        return build(config.model, weights=start, input_shape=(None, None, 3), **arguments)
    from mitoseg_tf.zoo.checkpoint import load_checkpoint

    if not os.path.isfile(start):
        raise FileNotFoundError(f"init_weights: checkpoint {start} not found.")
    model, source = build(config.model, input_shape=(None, None, 3), **arguments), load_checkpoint(start)
    shapes = [tuple(w.shape) for w in model.weights], [tuple(w.shape) for w in source.weights]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"init_weights: {start} holds a {source.name!r} with {source.count_params():,} parameters, which does not "
            f"fit {config.model} with {arguments} ({model.count_params():,} parameters)."
        )
    model.set_weights(source.get_weights())
    return model


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


def evaluation_source(config, split):
    """Whole images of ``split`` as the run's detection scoring reads them (at its ``target_mpp``)."""
    from mitoseg_tf.data.sources import load_source

    return load_source(
        config.data,
        split,
        data_dir=config.data_dir,
        num_examples=config.num_examples,
        seed=config.seed,
        target_mpp=config.target_mpp,
        **config.data_options,
    )


def _calibrate_detection(model, config, run_dir):
    """Detection on whole validation images picks the minimum figure size and the figure-score threshold
    (saved as detection.json); the test split is scored at them. Never tuned on test."""
    from mitoseg_tf.detection.evaluation import calibrate_model, save_detection_settings, source_mpp

    test = evaluation_source(config, config.test_split) if config.test_split else None
    settings = calibrate_model(
        model, evaluation_source(config, "validation"), test, mpp=source_mpp(config.data), tta=config.tta
    )
    save_detection_settings(run_dir, settings)
    return settings


def train_run(config: RunConfig, log: Callable[..., Any] = print, callbacks: Sequence = ()) -> tuple[str, dict | None]:
    """Train, pick the best checkpoint on validation, evaluate on the test split, write the run folder.

    Args:
        config: the run's settings.
        log: where progress lines go (``print``; a notebook may collect them).
        callbacks: extra Keras callbacks for ``fit``.

    Returns:
        ``(run_dir, metrics)``: the run folder and what ``metrics.json`` holds.
        Under ``multi_worker`` only the chief writes the run folder and
        evaluates; other workers return ``(run_dir, None)`` after training.

    Raises:
        ValueError: an unknown model or data source, a strategy or batch size
            that does not fit the devices, or ``resume`` of a folder whose
            configuration differs.
        FileNotFoundError: ``resume`` of a folder that is not a run folder, or
            an ``init_weights`` checkpoint that does not exist.
        FileExistsError: a new run (no ``resume``) in a folder that holds one.
    """
    from mitoseg_tf.data.sources import check_source
    from mitoseg_tf.models.outputs import output_roles
    from mitoseg_tf.training import compile_model, fit, set_precision
    from mitoseg_tf.training.callbacks import TimeBudget
    from mitoseg_tf.training.fit import BEST_CHECKPOINT
    from mitoseg_tf.training.precision import slow_precision_warning
    from mitoseg_tf.zoo import build, get_card
    from mitoseg_tf.zoo.checkpoint import load_checkpoint

    get_card(config.model)  # unknown names fail before any data is generated or folder made
    check_source(config.data)
    from mitoseg_tf.training import distribute
    from mitoseg_tf.training.record import seed_everything

    distribute.check_strategy_name(config.strategy)
    name = config.run_name or f"{config.model}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = os.path.join(config.output_dir, name)
    if config.resume:
        _check_resume(config, run_dir)
    strategy = distribute.make_strategy(config.strategy)  # first: multi_worker must precede any TF op
    distribute.check_global_batch(config.batch_size, strategy)
    # The pipeline module creates TF constants on import, which must come after the strategy.
    import mitoseg_tf.data.pipeline  # noqa: F401

    chief = distribute.is_chief(strategy)
    if chief and not config.resume:
        _check_fresh_folder(run_dir)
    precision = set_precision(config.precision)
    seed_everything(config.seed, config.deterministic)
    if chief and not config.resume:
        _write_config(config, run_dir, precision, distribute.num_replicas(strategy))

    log(f"Run folder: {run_dir}   precision: {precision}")
    for warning in (slow_precision_warning(precision), recorded_precision_warning(config, precision)):
        if warning:
            log(f"Warning: {warning}")
    width = get_card(config.model).width_arguments(config.base_filters)
    if not width:
        log(f"{config.model} has no base width; base_filters={config.base_filters} does not apply to it")
    with distribute.scope(strategy):
        model = _build_initial(build, config, {**width, **config.model_args})
    log(f"Model {config.model}: {model.count_params():,} parameters")
    train_ds, val_ds, test_ds = _make_splits(config, output_roles(model))

    with distribute.scope(strategy):
        compile_model(model, loss=config.loss, learning_rate=config.learning_rate)
    start = time.time()
    fit(
        model,
        train_ds,
        # One epoch leaves validation nothing to choose, and _evaluate_best scores the weights on it anyway:
        # a pass over the validation tiles saved (2.5 of a U-Net comparison run's 26 min; 14 of UNet 3+'s ~155).
        val_ds if config.epochs > 1 else None,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        run_dir=run_dir,
        tensorboard=config.tensorboard,
        strategy=strategy,
        resume=config.resume,
        callbacks=[*callbacks, *([TimeBudget(config.budget_minutes)] if config.budget_minutes else [])],
    )
    train_seconds = time.time() - start
    if not chief:
        log(f"Worker {distribute.worker_index(strategy)} finished training; the chief writes {run_dir}.")
        return run_dir, None

    best = load_checkpoint(os.path.join(run_dir, BEST_CHECKPOINT))
    metrics = _evaluate_best(best, model, config, run_dir, val_ds, test_ds, precision, train_seconds)
    text = _metrics_report(config, metrics, train_seconds)
    with open(os.path.join(run_dir, "metrics.md"), "w") as fh:
        fh.write(text + "\n")
    log("")
    log(text)
    log(f"\nRun folder: {run_dir}")
    return run_dir, metrics


def _write_config(config, run_dir, precision, replicas):
    """``config.json``: the settings, what they resolved to on this machine, and the examples of each split."""
    from mitoseg_tf.data.sources import split_manifest
    from mitoseg_tf.training.record import versions

    os.makedirs(run_dir, exist_ok=True)
    record = {
        **dataclasses.asdict(config),
        "resolved_precision": precision,
        "version": __version__,
        "versions": versions(),
        "replicas": replicas,
        # The examples of each split this run used (ids, or the synthetic tiles' seeds).
        "data_split": split_manifest(
            config.data,
            data_dir=config.data_dir,
            num_examples=config.num_examples,
            seed=config.seed,
            **config.data_options,
        ),
    }
    with open(os.path.join(run_dir, "config.json"), "w") as fh:
        json.dump(record, fh, indent=2)


def _make_splits(config, roles):
    """The training crops and the validation and test tiles (test None when the run keeps no test split)."""
    from mitoseg_tf.data.sources import make_data

    data = dict(
        data_dir=config.data_dir,
        batch_size=config.batch_size,
        seed=config.seed,
        roles=roles,
        num_examples=config.num_examples,
        normalise=config.stain_normalise,
        target_mpp=config.target_mpp,
        **config.data_options,
    )
    train_ds = make_data(
        config.data,
        "train",
        training=True,
        crop_size=config.crop_size,
        positive_fraction=config.positive_fraction,
        augment=config.augment,
        **data,
    )
    val_ds = make_data(config.data, "validation", training=False, eval_tile=config.eval_tile, **data)
    test_ds = (
        make_data(config.data, config.test_split, training=False, eval_tile=config.eval_tile, **data)
        if config.test_split
        else None
    )
    return train_ds, val_ds, test_ds


def _evaluate_best(best, model, config, run_dir, val_ds, test_ds, precision, train_seconds):
    """Score the best checkpoint, draw its curves and overlays, choose its detection settings; write metrics.json."""
    from mitoseg_tf.training import evaluate, monitor_key
    from mitoseg_tf.training.fit import BATCH_LOG, EPOCH_LOG
    from mitoseg_tf.training.report import plot_overlays, plot_training_curves

    val_results = evaluate(best, val_ds)
    test_results = evaluate(best, test_ds) if test_ds is not None else None
    plot_training_curves(
        os.path.join(run_dir, BATCH_LOG),
        os.path.join(run_dir, EPOCH_LOG),
        os.path.join(run_dir, "training_curves.png"),
        monitor_key(model),
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
    return metrics


def _metrics_report(config, metrics, train_seconds):
    """The text of metrics.md: everything train_run prints, so the run folder alone tells what the run found."""
    from mitoseg_tf.training import format_table

    val_results, test_results, detection = metrics["validation"], metrics["test"], metrics["detection"]
    report = [format_table(val_results, title=f"{config.model} on the {config.data} validation split")]
    if test_results is not None:
        report.append(
            format_table(test_results, title=f"{config.model} on the {config.data} {config.test_split} split")
        )
    val_dice = val_results["model"]["pooled"]["mitosis_dice"]
    base_dice = val_results["all_background"]["pooled"]["mitosis_dice"]
    report.append(
        f"Validation mitosis Dice (pooled): {val_dice:.4f}  vs all-background prediction: {base_dice:.4f}"
        f"   (training took {train_seconds / 60:.1f} min)"
    )
    if detection:
        held_out = detection.get("validation_held_out")
        report.append(
            f"Validation detection F1 at the size and threshold chosen there: {detection['validation']['f1']:.3f}"
            + (f"; each image at the size and threshold chosen on the others: {held_out['f1']:.3f}" if held_out else "")
        )
        report.append(detection_report(detection))
    return "\n\n".join(report)


def _score_row(label, rule, scores):
    return (
        f"| {label} | {rule} | {scores['precision']:.4f} | {scores['recall']:.4f} | {scores['f1']:.4f} | "
        f"{scores['tp']} | {scores['fp']} | {scores['fn']} |"
    )


def detection_report(detection):
    """Markdown of a run's ``detection.json``: the settings, what chose them, and the scores at them."""
    choices = ", ".join(f"{a:g}" for a in detection.get("min_area_choices_um2", ()))
    averaged = "; maps averaged over the 8 flips / quarter turns" if detection.get("tta") else ""
    lines = [
        "### Detection on whole images (detection.json)",
        "",
        f"Chosen on the validation split to maximise pooled F1: minimum figure size "
        f"{detection['min_area_um2']:g} um^2 (tried {choices or 'one size'}) and figure-score threshold "
        f"{detection['score_threshold']:.4g} (every score tried), with figures the pixels above "
        f"{detection['pixel_threshold']:g} and scored by their {detection.get('figure_score', 'mean')} "
        f"probability{averaged}. True centres: {detection.get('truth', 'points')}; a detection is correct within "
        f"{detection['match_distance_um']:g} um of one. Never tuned on test.",
        "",
        "| split | match within | precision | recall | F1 | TP | FP | FN |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rule = f"{detection['match_distance_um']:g} um"
    by_distance = detection.get("validation_by_distance") or {rule.replace(" ", ""): detection["validation"]}
    lines += [_score_row("validation (where chosen)", d.replace("um", " um"), s) for d, s in by_distance.items()]
    if detection.get("validation_held_out"):
        lines.append(
            _score_row(
                "validation, each image's size and score thresholds chosen on the others",
                rule,
                detection["validation_held_out"],
            )
        )
    test_by_distance = detection.get("test_by_distance") or (
        {rule.replace(" ", ""): detection["test"]} if detection.get("test") else {}
    )
    lines += [_score_row("test", d.replace("um", " um"), s) for d, s in test_by_distance.items()]
    return "\n".join(lines)
