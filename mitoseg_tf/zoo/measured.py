"""Write ``zoo/measured.json`` entries (the numbers of the model cards) from run folders.

    python -m mitoseg_tf.zoo.measured --runs runs/A runs/B --data "MoNuSeg 2018, ..." --note "2-core CPU"
    python -m mitoseg_tf.zoo.cards --out zoo      # then re-render the cards

Every number comes from a run folder's ``config.json`` and ``metrics.json`` (or
``--metrics-file``: an ``evaluate`` result saved next to them, such as a later
whole-image evaluation), rounded to 3 decimals; the schedule text is composed from
the recorded config (width, steps, batch, crop, the precision the run resolved,
minutes trained). Only the wording of ``data`` and ``--note`` is typed by a person.
An entry made here carries ``run`` (the folder's name); running the script again on
a folder of that name replaces its entry instead of adding a second one.

How the entries made before this script were made (their run folders were never
committed; each entry's ``source`` field says the same):

- ``mcsa_unet``, synthetic: ``mitoseg train`` at its defaults; the metrics are the run
  folder's ``metrics.json`` test split. This script reproduces it from a run folder with
  ``--data "synthetic (built-in, test split, 48 tiles 256 px)" --note "2-core CPU"``
  (``tests/zoo/test_measured.py`` does, on a folder rebuilt from those rounded numbers).
- ``mcsa_unet`` and ``unet``, MoNuSeg: the ``zoo/recipes/monuseg_*.yaml`` runs, scored
  again on the 6 whole validation images by sliding window (``evaluate_whole_images``;
  the run's own tile-grid numbers were 0.834 / 0.820, docs/RESULTS.md), copied by hand.
- ``unet``, MITOS-2012 rows: detection scores of the ``mitosis_unet.yaml`` run re-scored
  on 8-fold averaged maps, of its seed-1 rerun (``docs/results/mitosis_seeds.py``) and of
  the figure-classifier cascade (``docs/results/mitosis_cascade.py``), copied by hand
  from those scripts' output.
"""

import argparse
import datetime
import json
import os
import sys

DIGITS = 3
SEGMENTATION = (
    ("{target} Dice (pooled)", "pooled", "mitosis_dice"),
    ("{target} Dice (per image)", "per_image", "mitosis_dice"),
    ("Mean Dice (pooled)", "pooled", "mean_dice"),
    ("paper MPA (pooled)", "pooled", "paper_mpa"),
    ("MIoU (pooled)", "pooled", "miou"),
    ("MPA standard (pooled)", "pooled", "mpa"),
)
# One name per number wherever a score is shown (model cards, `mitoseg weights`, README, docs/RESULTS.md):
# "Mean Dice" alone reads like the Dice of the figures, and it is 0.06 higher than that on MoNuSeg.
METRIC_NAMES = (
    "`nucleus Dice` / `mitosis Dice`: the Dice of that class alone; "
    "`Mean Dice`: the mean of that Dice and the background class's (the paper's headline number, "
    "higher because background is easy); "
    "`pooled`: over every pixel of the images; `per image`: the mean of the images' scores; "
    "`tiles`: scored on evaluation tiles rather than on whole images; "
    "`detection F1`: figures matched one to one to true centres within the radius given (e.g. 5 um)."
)
# Nuclei are the foreground class of the MoNuSeg sources; everything else segments mitoses.
NUCLEUS_DATA = ("monuseg",)


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def _round(value):
    return round(float(value), DIGITS)


def _epochs_run(run_dir, config):
    """Epochs trained: history.csv's rows (a time budget may stop early), else the configured count."""
    path = os.path.join(run_dir, "history.csv")
    if os.path.isfile(path):
        with open(path) as fh:
            return max(0, sum(1 for line in fh if line.strip()) - 1)
    return config["epochs"]


def segmentation_metrics(results, data):
    """Card rows of an ``evaluate`` result; per image only for nuclei (many objects an image)."""
    target = "nucleus" if data in NUCLEUS_DATA else "mitosis"
    rows = {}
    for label, pooling, key in SEGMENTATION:
        if pooling == "per_image" and target == "mitosis":
            continue
        rows[label.format(target=target)] = _round(results["model"][pooling][key])
    return rows


def detection_metrics(detection):
    """Card rows of a run's detection calibration (``detection.json`` / metrics.json's ``detection``)."""
    maps = ", 8-fold TTA maps" if detection.get("tta") else ""
    rows = {}
    by_distance = detection.get("validation_by_distance", {})
    if "5um" in by_distance:
        for key in ("f1", "precision", "recall"):
            name = "F1" if key == "f1" else key
            rows[f"detection {name} (5 um{maps})"] = _round(by_distance["5um"][key])
    if "8um" in by_distance:
        rows[f"detection F1 (8 um{maps})"] = _round(by_distance["8um"]["f1"])
    if detection.get("validation_held_out"):
        label = "detection F1 (5 um, each field's size and score thresholds chosen on the others)"
        rows[label] = _round(detection["validation_held_out"]["f1"])
    return rows


def schedule_text(run_dir, config, metrics, note=None):
    origin = f"{config['recipe']} recipe" if config.get("recipe") else "`mitoseg train`"
    if not config.get("recipe") and _is_default(config):
        origin = "`mitoseg train` defaults"
    parts = [
        f"base_filters {config['base_filters']}",
        f"{_epochs_run(run_dir, config)} x {config['steps_per_epoch']} steps",
        f"batch {config['batch_size']}",
        f"{config['crop_size']} px crops",
    ]
    if config.get("loss"):
        parts.append(config["loss"])
    parts.append(config.get("resolved_precision") or metrics["precision"])
    if note:
        parts.append(note)
    parts.append(f"{metrics['train_seconds'] / 60:.1f} min")
    return f"{origin}: " + ", ".join(parts)


def _is_default(config):
    from mitoseg_tf.config import RunConfig

    defaults = RunConfig()
    keys = ("model", "data", "base_filters", "epochs", "steps_per_epoch", "batch_size", "crop_size", "loss", "seed")
    return all(config.get(k) == getattr(defaults, k) for k in keys if k != "model")


def entry_from_run(run_dir, *, data=None, note=None, date=None, metrics_file="metrics.json"):
    """``(model, entry)`` for one run folder."""
    config = _load(os.path.join(run_dir, "config.json"))
    metrics = _load(os.path.join(run_dir, "metrics.json"))
    scored = metrics if metrics_file == "metrics.json" else _load(os.path.join(run_dir, metrics_file))
    split = "test" if scored.get("test") else "validation"
    rows = {}
    if metrics.get("detection") and config["data"] not in NUCLEUS_DATA:
        rows.update(detection_metrics(metrics["detection"]))
    rows.update(segmentation_metrics(scored[split], config["data"]))
    if date is None:
        mtime = os.path.getmtime(os.path.join(run_dir, "metrics.json"))
        date = datetime.date.fromtimestamp(mtime).isoformat()
    entry = {
        "data": data or f"{config['data']} ({split} split)",
        "schedule": schedule_text(run_dir, config, metrics, note),
        "metrics": rows,
        "date": date,
        "run": os.path.basename(os.path.normpath(run_dir)),
    }
    return config["model"], entry


def update(measured, model, entry):
    """``measured`` with ``entry`` added to ``model``'s list, replacing an earlier entry of the same run."""
    entries = [e for e in measured.get(model, []) if e.get("run") != entry["run"]]
    return {**measured, model: [*entries, entry]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (config.json + metrics.json each)")
    parser.add_argument("--out", default=os.path.join("zoo", "measured.json"))
    parser.add_argument("--data", help="what the numbers were measured on, as the card should say it")
    parser.add_argument("--note", help="appended to the schedule (the machine, what ships)")
    parser.add_argument("--date", help="default: the day metrics.json was written")
    parser.add_argument("--metrics-file", default="metrics.json", help="an evaluate() result in each run folder")
    parser.add_argument("--print", action="store_true", help="print the entries instead of writing --out")
    args = parser.parse_args(argv)
    measured = _load(args.out) if os.path.exists(args.out) else {}
    for run_dir in args.runs:
        model, entry = entry_from_run(
            run_dir, data=args.data, note=args.note, date=args.date, metrics_file=args.metrics_file
        )
        if args.print:
            print(json.dumps({model: entry}, indent=2))
        measured = update(measured, model, entry)
    if not args.print:
        with open(args.out, "w") as fh:
            json.dump(measured, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
