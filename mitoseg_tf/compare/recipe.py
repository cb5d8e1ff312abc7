"""``mitoseg compare --recipe FILE``: every (model, seed) of a comparison trained as ``mitoseg train --recipe``.

A comparison recipe is a training recipe (``zoo/recipes/*.yaml``: data,
mixture sources, ``target_mpp``, split, augmentation, width, steps) with one
more key, ``compare``::

    compare:
      models: [unet, mcsa_unet]          # default: every model of `tables`
      tables: [table1, table2]
      seeds: {default: [0, 1], unet: [0, 1, 2]}   # or a list / a count for every model
      model_args: {ms_rcnn: {backbone: small}}    # a network's own builder arguments
      records: docs/results/compare_atypia
      measured_on: {validation: "...", test: "..."}   # what the report says each split is
      figure_tiles: 3

Each run is ``train_run`` of the recipe's ``RunConfig`` with ``model``, ``seed``
(and that model's ``model_args``) replaced, in ``OUT/runs/<model>_s<seed>``
outside the repository; when it ends its small record goes to the records
folder (``records.py``). A (model, seed) whose record holds the same config
hash is done and never retrained; one whose record differs is reported and
left alone (delete the record to retrain it).
"""

import dataclasses
import json
import os
import time

import numpy as np

from mitoseg_tf.compare import records as records_lib
from mitoseg_tf.compare.selection import resolve_models
from mitoseg_tf.compare.tables import run_scores
from mitoseg_tf.config import TABLES
from mitoseg_tf.training.run import evaluation_source, read_recipe, recipe_config

COMPARE_KEYS = ("models", "tables", "seeds", "model_args", "records", "measured_on", "figure_tiles")
FIGURE_SIZE = 96  # side of each figure tile (pixels at the recipe's target_mpp)
FIGURE_CONTEXT = 32  # pixels of image each side of a tile that the network sees when predicting it
STEP_FILE = "step_seconds.json"
RUNS_FOLDER = "runs"  # under --out: the run folders, with their best.keras (weights never go in the records)
# What a finished run folder holds that its record is made from (and its weights shipped from).
RUN_FILES = ("config.json", "metrics.json", "detection.json", "best.keras")


@dataclasses.dataclass
class ComparePlan:
    """A comparison recipe: the shared ``RunConfig`` and what varies between its runs."""

    path: str
    base: object  # RunConfig
    models: list
    seeds: dict  # model -> [seeds]
    model_args: dict
    records: str
    measured_on: dict
    figure_tiles: int

    def jobs(self):
        """(model, seed) pairs, every model's first seed before any second one (a cut campaign stays balanced)."""
        depth = max(len(s) for s in self.seeds.values())
        return [(m, self.seeds[m][i]) for i in range(depth) for m in self.models if i < len(self.seeds[m])]

    def run_config(self, model, seed, output_dir):
        """The ``RunConfig`` ``mitoseg train --recipe`` would use with ``model`` and ``seed`` replaced."""
        from mitoseg_tf.zoo import get_card

        return dataclasses.replace(
            self.base,
            model=model,
            seed=seed,
            # The recipe's loss is the segmentation networks'; a detector (MS R-CNN) trains on its own losses,
            # and compile_model refuses any other (its card's tag says which, tests/zoo/test_parameter_counts.py).
            loss=None if "detector" in get_card(model).tags else self.base.loss,
            model_args={**self.base.model_args, **self.model_args.get(model, {})},
            output_dir=output_dir,
            run_name=records_lib.run_name(model, seed),
        )


def _seed_list(value, where):
    seeds = list(range(value)) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) for s in seeds)
        or len(set(seeds)) < len(seeds)
    ):
        raise ValueError(f"{where}: seeds must be a positive count or a list of distinct integers; got {value!r}.")
    return seeds


def load_compare_recipe(path, **overrides):
    """A ``ComparePlan`` from a comparison recipe; ``overrides`` as for ``load_recipe`` (e.g. ``data_dir``)."""
    from mitoseg_tf.zoo import get_card

    values = read_recipe(path)
    spec = values.pop("compare", None) or {}
    where = f"recipe {path}, compare"
    unknown = sorted(set(spec) - set(COMPARE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(COMPARE_KEYS)}.")
    base = recipe_config(values, path, **overrides)
    models = resolve_models(spec.get("models") or (), tuple(spec.get("tables", TABLES)))
    seeds = spec.get("seeds", 1)
    if isinstance(seeds, dict):
        extra = sorted(set(seeds) - set(models) - {"default"})
        if extra:
            raise ValueError(f"{where}.seeds: {extra} are not models of this comparison ({', '.join(models)}).")
        seeds = {m: _seed_list(seeds.get(m, seeds.get("default", 1)), f"{where}.seeds.{m}") for m in models}
    else:
        seeds = {m: _seed_list(seeds, f"{where}.seeds") for m in models}
    model_args = spec.get("model_args") or {}
    for name, arguments in model_args.items():
        card = get_card(name)
        bad = sorted(set(arguments) - set(card.arguments)) if not card.accepts_any_argument else []
        if name not in models or bad:
            raise ValueError(f"{where}.model_args.{name}: not a model of this comparison, or unknown arguments {bad}.")
    return ComparePlan(
        path=path,
        base=base,
        models=models,
        seeds=seeds,
        model_args=model_args,
        records=spec.get("records") or records_lib.DEFAULT_RECORDS,
        measured_on=dict(spec.get("measured_on") or {}),
        figure_tiles=int(spec.get("figure_tiles", 3)),
    )


def _step_timer():
    """A Keras callback timing every training step but the first (the graph is traced then)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return StepTimer()


def _step_summary(seconds):
    steady = seconds[1:] or seconds
    return {
        "steps": len(seconds),
        "first_step_seconds": round(seconds[0], 4) if seconds else None,
        "seconds_per_step": round(float(np.median(steady)), 4) if steady else None,
        "mean_seconds_per_step": round(float(np.mean(steady)), 4) if steady else None,
    }


def _read_json(path):
    with open(path) as fh:
        return json.load(fh)


def _history(run_dir):
    from mitoseg_tf.training.callbacks import read_epoch_log

    path = os.path.join(run_dir, "history.csv")
    return read_epoch_log(path) if os.path.isfile(path) else []


def _crop_box(shape, centre, size):
    """``(top, left, height, width)`` of a ``size`` window around ``centre``, inside an image of ``shape``."""
    box = []
    for extent, c in zip(shape[:2], centre):
        side = min(size, extent)
        start = int(np.clip(round(c) - side // 2, 0, extent - side))
        box.append((start, side))
    return box[0][0], box[1][0], box[0][1], box[1][1]


def figure_tiles(config, count, size=FIGURE_SIZE):
    """The comparison's figure tiles: a window around the first figure of each of the first ``count`` images
    of the test split (validation when there is none) that have one. ``{"spec", "images", "masks", "boxes"}``."""
    from mitoseg_tf.detection.figures import mask_centroids

    split = config.test_split or "validation"
    spec, images, masks = [], [], []
    examples = evaluation_source(config, split)
    for index, example in enumerate(
        examples.as_numpy_iterator() if hasattr(examples, "as_numpy_iterator") else examples
    ):
        if len(spec) >= count:
            break
        points = (
            np.asarray(example["points"], np.float64).reshape(-1, 2)
            if "points" in example
            else mask_centroids(example["mask"])
        )
        if not len(points):
            continue
        image, mask = np.asarray(example["image"]), np.asarray(example["mask"]).reshape(example["image"].shape[:2])
        box = _crop_box(image.shape, points[0], size)
        spec.append([split, index, *box])
        images.append(image)
        masks.append(mask)
    return {"spec": spec, "images": images, "masks": masks}


def predict_tiles(model, tiles):
    """uint8 probability (0-255) of ``model`` on each tile, predicted with ``FIGURE_CONTEXT`` pixels around it."""
    from mitoseg_tf.inference import predict_image

    maps = []
    for (_, _, top, left, height, width), image in zip(tiles["spec"], tiles["images"]):
        t, l, h, w = _crop_box(
            image.shape, (top + height / 2, left + width / 2), max(height, width) + 2 * FIGURE_CONTEXT
        )
        probability = predict_image(model, image[t : t + h, l : l + w])
        maps.append(probability[top - t : top - t + height, left - l : left - l + width])
    return (np.clip(np.stack(maps) if maps else np.zeros((0, 1, 1)), 0, 1) * 255).round().astype(np.uint8)


def _tile_arrays(tiles):
    crops = [
        (image[t : t + h, l : l + w], mask[t : t + h, l : l + w])
        for (_, _, t, l, h, w), image, mask in zip(tiles["spec"], tiles["images"], tiles["masks"])
    ]
    return {
        "spec": np.array(tiles["spec"], dtype=object).astype(str),
        "images": np.stack([c[0] for c in crops]).astype(np.uint8) if crops else np.zeros((0, 1, 1, 3), np.uint8),
        "masks": np.stack([c[1] > 0 for c in crops]).astype(np.uint8) if crops else np.zeros((0, 1, 1), np.uint8),
    }


def record_fields(config, run_dir, measured_on):
    """The record of a finished run folder as its files give it, without the network: config and hashes,
    machine, seconds per step, history, metrics, scores and detection settings (``make_record`` adds the
    parameter count and the figure maps). ``measured_on``: what each split is (``ComparePlan.measured_on``)."""
    from mitoseg_tf.training.record import versions

    settings = dict(dataclasses.asdict(config))
    metrics = _read_json(os.path.join(run_dir, "metrics.json"))
    detection = _read_json(os.path.join(run_dir, "detection.json"))
    run_record = _read_json(os.path.join(run_dir, "config.json"))
    steps = _read_json(os.path.join(run_dir, STEP_FILE)) if os.path.isfile(os.path.join(run_dir, STEP_FILE)) else {}
    splits = [s for s in ("validation", "test") if metrics.get(s) and (detection or {}).get(s)]
    return {
        "model": config.model,
        "seed": config.seed,
        "config_hash": records_lib.config_hash(settings),
        "recipe_hash": records_lib.recipe_hash(settings),
        "config": records_lib.hashed_config(settings),
        "recipe": config.recipe,
        "resolved_precision": run_record.get("resolved_precision"),
        "software": run_record.get("versions") or versions(),
        "machine": records_lib.machine(),
        "train_seconds": metrics.get("train_seconds"),
        **steps,
        "history": _history(run_dir),
        "metrics": {s: metrics.get(s) for s in ("validation", "test")},
        "scores": {s: run_scores(metrics, detection, split=s) for s in splits},
        "measured_on": {s: measured_on.get(s, f"the {s} split of `{config.data}`") for s in splits},
        "detection": detection,
    }


def make_record(config, run_dir, plan, folder):
    """Write the record of a finished run folder into ``folder`` (figure maps first, ``record.json`` last)."""
    import keras

    from mitoseg_tf.zoo.checkpoint import load_checkpoint

    model = load_checkpoint(os.path.join(run_dir, "best.keras"))
    tiles = figure_tiles(config, plan.figure_tiles)
    arrays = _tile_arrays(tiles)
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(
        os.path.join(folder, records_lib.FIGURE_FILE), spec=arrays["spec"], probability=predict_tiles(model, tiles)
    )
    shared = os.path.join(os.path.dirname(os.path.abspath(folder)), records_lib.TILES_FILE)
    if not os.path.isfile(shared):  # the same tiles for every run (the report draws only runs whose spec matches)
        np.savez_compressed(shared, **arrays)
    record = {**record_fields(config, run_dir, plan.measured_on), "parameters": int(model.count_params())}
    keras.backend.clear_session()
    return records_lib.write_record(folder, record)


def _finished_folder(run_dir, config):
    """Whether ``run_dir`` holds a finished run of exactly ``config`` (recorded now without retraining)."""
    if not all(os.path.isfile(os.path.join(run_dir, f)) for f in RUN_FILES):
        return False
    return records_lib.config_hash(records_lib.folder_config(run_dir)) == records_lib.config_hash(
        dataclasses.asdict(config)
    )


def run_recipe_compare(
    path, *, output_dir="compare", records_dir=None, models=(), max_runs=None, overrides=None, log=print
):
    """Train and record every (model, seed) of the recipe at ``path`` that has no matching record.

    Returns ``{"trained", "skipped", "changed": {(model, seed): [differences]}, "left", "records_dir"}``;
    ``max_runs`` trains at most that many (a campaign runs one at a time); ``models`` keeps only those.
    """
    from mitoseg_tf.training.run import train_run

    plan = load_compare_recipe(path, **(overrides or {}))
    records_dir = records_dir or plan.records
    unknown = sorted(set(models) - set(plan.models))
    if unknown:
        raise ValueError(f"--models {unknown}: not models of {path} ({', '.join(plan.models)}).")
    runs_dir = os.path.join(output_dir, RUNS_FOLDER)
    trained, skipped, changed, pending = [], [], {}, []
    for model, seed in plan.jobs():
        if models and model not in models:
            continue
        config = plan.run_config(model, seed, runs_dir)
        status, differences = records_lib.record_status(records_dir, model, seed, dataclasses.asdict(config))
        if status == "done":
            skipped.append((model, seed))
        elif status == "changed":
            changed[(model, seed)] = differences
            log(
                f"   {model} seed {seed}: its record in {records_dir} was made with another config ("
                f"{'; '.join(differences)}); not reused and not overwritten: delete it to retrain"
            )
        else:
            pending.append((model, seed, config))
    log(
        f"{path}: {len(plan.jobs())} runs; {len(skipped)} recorded in {records_dir}, {len(changed)} changed, "
        f"{len(pending)} to train" + (f" ({max_runs} now)" if max_runs is not None else "")
    )
    for model, seed in skipped:
        log(f"   {model} seed {seed}: recorded, not retrained")
    for model, seed, config in pending[:max_runs]:
        run_dir = os.path.join(runs_dir, config.run_name)
        start = time.time()
        if _finished_folder(run_dir, config):
            log(f"== {model} seed {seed}: {run_dir} finished earlier; recording it")
        else:
            log(f"== {model} seed {seed}: training in {run_dir}")
            records_lib.clear_run_folder(run_dir, log)
            timer = _step_timer()
            train_run(config, log=lambda *a: log("  ", *a), callbacks=[timer])
            with open(os.path.join(run_dir, STEP_FILE), "w") as fh:
                json.dump(_step_summary(timer.seconds), fh)
        written = make_record(config, run_dir, plan, records_lib.record_dir(records_dir, model, seed))
        log(f"   recorded {written} ({time.time() - start:.0f} s)")
        trained.append((model, seed))
    left = [(m, s) for m, s, _ in pending[len(trained) :]]
    return {"trained": trained, "skipped": skipped, "changed": changed, "left": left, "records_dir": records_dir}
