"""The small record each finished (model, seed) run of ``mitoseg compare --recipe`` leaves in the repository.

Importable without TensorFlow: ``mitoseg compare --report`` reads records only.

A record is a folder ``RECORDS/<model>_s<seed>/`` holding ``record.json``
(the run's config and its hash, seconds per step, the machine, the epoch
history, the validation and test metrics, the detection settings) and
``figure.npz`` (the run's probability on the comparison's figure tiles,
uint8); ``RECORDS/figure_tiles.npz`` holds those tiles' images and truth once
for every run. No weights. ``record.json`` is written last: a folder without
it is not a record.

A record counts as the run of a recipe when its ``config_hash`` is the hash of
the config the recipe gives that (model, seed): the ``RunConfig`` with every
key that changes results, i.e. all but ``MACHINE_KEYS`` (where the data and run
folders are, how the run was launched).
"""

import dataclasses
import hashlib
import json
import os
import platform
import shutil

from mitoseg_tf.config import RunConfig

RECORD_FILE = "record.json"
FIGURE_FILE = "figure.npz"
TILES_FILE = "figure_tiles.npz"
DEFAULT_RECORDS = os.path.join("docs", "results", "compare_atypia")
# RunConfig keys that say where things are or how the run was launched, never what it computes.
MACHINE_KEYS = (
    "data_dir",
    "output_dir",
    "run_name",
    "tensorboard",
    "num_overlays",
    "strategy",
    "resume",
    "recipe",
    "precision_recorded",
)
# Keys that differ between the runs of one comparison (model_args: a network's own, e.g. MS R-CNN's backbone).
RUN_KEYS = ("model", "seed", "model_args")


def run_name(model, seed):
    """The record's (and run folder's) name of one (model, seed)."""
    return f"{model}_s{seed}"


def hashed_config(config):
    """The part of a run's config (a ``RunConfig`` as a dict) that decides its results."""
    values = {k: v for k, v in config.items() if k not in MACHINE_KEYS}
    options = values.get("data_options")
    if isinstance(options, dict) and "prepared_dir" in options:  # a cache of the same data
        values["data_options"] = {k: v for k, v in options.items() if k != "prepared_dir"}
    return json.loads(json.dumps(values, sort_keys=True))


def _digest(values):
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def config_hash(config):
    """Hash of one run's config: equal hashes train the same network on the same data the same way."""
    return _digest(hashed_config(config))


def recipe_hash(config):
    """Hash of the config without model, seed and model arguments: the same for every run of one comparison."""
    return _digest({k: v for k, v in hashed_config(config).items() if k not in RUN_KEYS})


def folder_config(run_dir):
    """The settings a run folder's ``config.json`` trained with: its ``RunConfig`` fields, without what
    ``train_run`` adds beside them (resolved precision, versions, the split's examples)."""
    with open(os.path.join(run_dir, "config.json")) as fh:
        saved = json.load(fh)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    return {k: v for k, v in saved.items() if k in fields}


def config_differences(recorded, wanted):
    """``["key: recorded -> wanted", ...]`` between two hashed configs (top-level keys)."""
    return [
        f"{key}: {json.dumps(recorded.get(key))} -> {json.dumps(wanted.get(key))}"
        for key in sorted(set(recorded) | set(wanted))
        if recorded.get(key) != wanted.get(key)
    ]


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine():
    """The machine a run trained on: CPU model, core count (and the cores this process may use), system."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "usable_cores": usable, "system": platform.platform()}


def record_dir(records_dir, model, seed):
    return os.path.join(records_dir, run_name(model, seed))


def read_record(path):
    """``record.json`` of a record folder (or the file itself); None when the folder holds none."""
    path = os.fspath(path)
    path = path if path.endswith(".json") else os.path.join(path, RECORD_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def write_record(folder, record):
    """Write ``record.json`` into ``folder`` (last, so that its presence marks the run done)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, RECORD_FILE)
    with open(path + ".part", "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(path + ".part", path)
    return path


def record_status(records_dir, model, seed, config):
    """``("done" | "changed" | "missing", differences)`` of the record of (model, seed) against ``config``."""
    record = read_record(record_dir(records_dir, model, seed))
    if record is None:
        return "missing", []
    if record.get("config_hash") == config_hash(config):
        return "done", []
    return "changed", config_differences(record.get("config", {}), hashed_config(config))


def list_records(records_dir):
    """Every record under ``records_dir``, sorted by model then seed."""
    found = []
    if os.path.isdir(records_dir):
        for name in sorted(os.listdir(records_dir)):
            record = read_record(os.path.join(records_dir, name))
            if record is not None:
                record["folder"] = os.path.join(records_dir, name)
                found.append(record)
    return sorted(found, key=lambda r: (r["model"], r["seed"]))


def clear_run_folder(run_dir, log=print):
    """Delete ``run_dir`` before a campaign trains its (model, seed) again: it is an unfinished run (killed,
    or failed) or a run of another config. A run restarts from scratch; it never continues from another's files."""
    if os.path.isdir(run_dir):
        log(f"   removing {run_dir}: an unfinished run, or one of another config (a run restarts from scratch)")
        shutil.rmtree(run_dir)
