"""``run_compare``: train every requested model under one recipe and seed set, score, tabulate, plot.

Output folder layout::

    OUT/plan.json                 the recipe (epochs fixed once, so resumed runs share it)
    OUT/runs/MODEL-seedS/         train_run's run folder + detection.json + figure_tiles.npz
    OUT/table1.md, table2.md, comparison.md, comparison.csv, figure5.png

A run whose folder holds ``metrics.json`` and ``detection.json`` is finished and
never retrained, so an interrupted comparison continues where it stopped.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from mitoseg_tf.compare import budget as budget_lib
from mitoseg_tf.compare.figure import FIGURE_FILE, pick_tiles, plot_comparison
from mitoseg_tf.compare.records import clear_run_folder
from mitoseg_tf.compare.selection import resolve_models, table_models
from mitoseg_tf.compare.tables import markdown_table, run_scores, summarise, write_csv

# CompareConfig lives in mitoseg_tf.config so that `mitoseg compare --help` needs no TensorFlow.
from mitoseg_tf.config import CompareConfig  # noqa: F401  (re-exported)
from mitoseg_tf.data.sources import check_source, load_source
from mitoseg_tf.detection.evaluation import calibrate_model, save_detection_settings, source_mpp
from mitoseg_tf.inference import predict_image
from mitoseg_tf.inference.resample import check_mpp
from mitoseg_tf.training import set_precision
from mitoseg_tf.training.run import RunConfig, train_run
from mitoseg_tf.zoo import get_card
from mitoseg_tf.zoo.checkpoint import load_checkpoint

PLAN_FILE = "plan.json"
# Settings that define the recipe: a resumed comparison must use the same ones.
RECIPE_KEYS = (
    "data",
    "data_dir",
    "num_examples",
    "tiny",
    "base_filters",
    "batch_size",
    "crop_size",
    "learning_rate",
    "loss",
    "precision",
    "match_distance_um",
    "mpp",
)


def _model_args(name, config):
    """``(base_filters, model_args)`` for ``train_run``: the card's tiny overrides when asked."""
    if not config.tiny:
        return config.base_filters, {}
    tiny = {k: v for k, v in get_card(name).tiny.items() if k != "input_shape"}
    return tiny.pop("base_filters", config.base_filters), tiny


def _run_dir(config, name, seed):
    return os.path.join(config.output_dir, "runs", f"{name}-seed{seed}")


def is_finished(run_dir):
    """Whether a run folder holds a completed, scored run."""
    return all(os.path.isfile(os.path.join(run_dir, f)) for f in ("metrics.json", "detection.json", FIGURE_FILE))


def _recipe(config):
    return {k: getattr(config, k) for k in RECIPE_KEYS}


def _validation_pixels(config):
    """Pixels in the validation split (what every epoch's validation pass reads)."""
    source = load_source(config.data, "validation", data_dir=config.data_dir, num_examples=config.num_examples)
    examples = source.as_numpy_iterator() if hasattr(source, "as_numpy_iterator") else iter(source)
    return sum(int(np.prod(np.shape(e["image"])[:2])) for e in examples)


def _load_or_make_plan(config, pending, log, started):
    path = os.path.join(config.output_dir, PLAN_FILE)
    if os.path.isfile(path):
        with open(path) as fh:
            plan = json.load(fh)
        if plan["recipe"] != json.loads(json.dumps(_recipe(config))):
            changed = sorted(k for k in RECIPE_KEYS if plan["recipe"].get(k) != _recipe(config)[k])
            raise ValueError(
                f"{config.output_dir!r} holds a comparison with a different recipe ({', '.join(changed)} differ); "
                f"use another --out folder or the same settings."
            )
        log(f"Resuming: {plan['epochs']} epochs x {plan['steps_per_epoch']} steps (from {path})")
        return plan
    epochs, steps = config.epochs, config.steps_per_epoch
    estimate = None
    if config.budget_minutes is not None and pending:
        set_precision(config.precision)  # measure under the policy the runs will train with
        pixels = _validation_pixels(config)
        measured = {}
        for name in dict.fromkeys(n for n, _ in pending):
            base_filters, model_args = _model_args(name, config)
            measured[name] = budget_lib.measure_step(
                name,
                base_filters=base_filters,
                model_args=model_args,
                batch_size=config.batch_size,
                crop_size=config.crop_size,
                loss=config.loss,
                learning_rate=config.learning_rate,
                validation_pixels=pixels,
            )
            overhead, step, per_epoch = measured[name]
            log(
                f"  measured {name}: overhead ~{overhead:.1f} s, {step:.3f} s/step, {per_epoch:.2f} s/epoch besides steps"
            )
        left = config.budget_minutes * 60.0 - (time.time() - started)
        epochs, steps, estimate = budget_lib.plan_epochs(left, [measured[n] for n, _ in pending], steps)
        log(f"Budget {config.budget_minutes} min: {epochs} epochs x {steps} steps per run (estimate {estimate} s)")
    plan = {
        "recipe": _recipe(config),
        "epochs": epochs,
        "steps_per_epoch": steps,
        "budget_minutes": config.budget_minutes,
        "estimated_seconds": estimate,
    }
    os.makedirs(config.output_dir, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(plan, fh, indent=2)
    return plan


def _score_run(run_dir, config, seed, mpp):
    """Detection threshold on validation, detection scores on test, and the figure tiles' maps."""
    model = load_checkpoint(os.path.join(run_dir, "best.keras"))

    def source(split):
        return load_source(config.data, split, data_dir=config.data_dir, num_examples=config.num_examples, seed=seed)

    settings = calibrate_model(
        model, source("validation"), source("test"), mpp=mpp, match_distance_um=config.match_distance_um
    )
    indices, images, _ = pick_tiles(source("test"), config.figure_tiles)
    maps = np.stack([predict_image(model, image) for image in images]) if images else np.zeros((0, 1, 1))
    np.savez_compressed(os.path.join(run_dir, FIGURE_FILE), indices=np.array(indices), probability=maps)
    save_detection_settings(run_dir, settings)  # written last: its presence marks the run finished
    keras.backend.clear_session()
    return settings


def _write_outputs(config, names, seeds, log):
    summaries = {}
    for name in names:
        per_seed = []
        for seed in seeds:
            run_dir = _run_dir(config, name, seed)
            if is_finished(run_dir):
                with open(os.path.join(run_dir, "metrics.json")) as fh:
                    metrics = json.load(fh)
                with open(os.path.join(run_dir, "detection.json")) as fh:
                    detection = json.load(fh)
                per_seed.append(run_scores(metrics, detection, config.aggregation))
        if per_seed:
            summaries[name] = summarise(per_seed)
    tables = [t for t in config.tables if any(n in summaries for n in table_models(t))]
    texts = []
    for table in tables:
        text = markdown_table(table, summaries, data=config.data, seeds=list(seeds), aggregation=config.aggregation)
        with open(os.path.join(config.output_dir, f"{table}.md"), "w") as fh:
            fh.write(text + "\n")
        texts.append(text)
    with open(os.path.join(config.output_dir, "comparison.md"), "w") as fh:
        fh.write("\n\n".join(texts) + "\n")
    write_csv(os.path.join(config.output_dir, "comparison.csv"), tables, summaries)
    _write_figure(config, [n for n in names if n in summaries], seeds[0], log)
    return tables, summaries


def _write_figure(config, names, seed, log):
    names = [n for n in names if is_finished(_run_dir(config, n, seed))]
    if not names:
        return
    source = load_source(config.data, "test", data_dir=config.data_dir, num_examples=config.num_examples, seed=seed)
    indices, images, masks = pick_tiles(source, config.figure_tiles)
    predictions = {}
    for name in names:
        stored = np.load(os.path.join(_run_dir(config, name, seed), FIGURE_FILE))
        if stored["indices"].tolist() != indices:
            log(f"  {name}: figure tiles differ from the other runs' (data changed?); left out of the figure")
            continue
        predictions[name] = stored["probability"]
    if images and predictions:
        plot_comparison(images, masks, predictions, os.path.join(config.output_dir, "figure5.png"))


def run_compare(config: CompareConfig, log=print):
    """Train and score every (model, seed) not finished yet, then write the tables and the figure.

    Returns ``{"tables": [...], "summaries": {model: {metric: (mean, std, n)}},
    "trained": [(model, seed)], "skipped": [(model, seed)], "plan": {...}}``.
    """
    started = time.time()
    if not isinstance(config.repeats, int) or config.repeats < 1:
        raise ValueError(f"repeats must be a positive integer; got {config.repeats!r}.")
    if config.budget_minutes is not None and config.budget_minutes <= 0:
        raise ValueError(f"budget_minutes must be positive; got {config.budget_minutes!r}.")
    if config.aggregation not in ("pooled", "per_image"):
        raise ValueError(f"aggregation must be 'pooled' or 'per_image'; got {config.aggregation!r}.")
    check_source(config.data)
    names = resolve_models(config.models, config.tables)
    seeds = list(range(config.seed, config.seed + config.repeats))
    mpp = source_mpp(config.data) if config.mpp is None else check_mpp(config.mpp, "the compare option mpp (--mpp)")
    config = dataclasses.replace(config, mpp=mpp)
    jobs = [(n, s) for s in seeds for n in names]
    pending = [(n, s) for n, s in jobs if not is_finished(_run_dir(config, n, s))]
    skipped = [job for job in jobs if job not in pending]
    log(f"Comparing {', '.join(names)} x seeds {seeds}: {len(pending)} to train, {len(skipped)} already finished")
    plan = _load_or_make_plan(config, pending, log, started)
    for name, seed in pending:
        base_filters, model_args = _model_args(name, config)
        run_config = RunConfig(
            model=name,
            data=config.data,
            data_dir=config.data_dir,
            base_filters=base_filters,
            epochs=plan["epochs"],
            steps_per_epoch=plan["steps_per_epoch"],
            batch_size=config.batch_size,
            crop_size=config.crop_size,
            learning_rate=config.learning_rate,
            loss=config.loss,
            precision=config.precision,
            seed=seed,
            output_dir=os.path.join(config.output_dir, "runs"),
            run_name=f"{name}-seed{seed}",
            num_overlays=2,
            model_args=model_args,
            num_examples=config.num_examples,
        )
        t0 = time.time()
        log(f"== {name} seed {seed}")
        clear_run_folder(_run_dir(config, name, seed), log)
        train_run(run_config, log=lambda *a: None)
        settings = _score_run(_run_dir(config, name, seed), config, seed, mpp)
        log(
            f"   done in {time.time() - t0:.0f} s; detection F1 {settings['test']['f1']:.3f} at score "
            f"threshold {settings['score_threshold']:.3f} (chosen on validation)"
        )
    for name, seed in skipped:
        log(f"   {name} seed {seed}: finished earlier, not retrained")
    tables, summaries = _write_outputs(config, names, seeds, log)
    log(
        f"Wrote {', '.join(t + '.md' for t in tables)}, comparison.csv, figure5.png to {config.output_dir} "
        f"({time.time() - started:.0f} s)"
    )
    return {"tables": tables, "summaries": summaries, "trained": pending, "skipped": skipped, "plan": plan}
