"""Copy a finished run's small record into the repository (never its checkpoints).

    python docs/results/record_run.py RUN_DIR DEST_DIR [--note TEXT]

Writes DEST_DIR/<run name>/ with the run's config.json, history.csv,
metrics.json, metrics.md and detection.json (those present) and machine.json:
the CPU, its cores, the software versions and the run's training seconds, so a
number in docs/RESULTS.md can be traced to what produced it and what it cost.
A run without metrics.json did not finish and is refused: a cut-off run is
restarted, never reported.
"""

import argparse
import json
import os
import shutil

from mitoseg_tf.compare.records import cpu_name
from mitoseg_tf.training.record import versions

FILES = ("config.json", "history.csv", "metrics.json", "metrics.md", "detection.json", "hard_negatives.json")


def record(run_dir, dest_dir, note=None):
    if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
        raise SystemExit(f"{run_dir} has no metrics.json: the run did not finish, so it is not recorded.")
    name = os.path.basename(os.path.abspath(run_dir))
    out = os.path.join(dest_dir, name)
    os.makedirs(out, exist_ok=True)
    for file in FILES:
        if os.path.isfile(os.path.join(run_dir, file)):
            shutil.copy(os.path.join(run_dir, file), os.path.join(out, file))
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        seconds = json.load(fh).get("train_seconds")
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "train_seconds": seconds, "software": versions()}
    if note:
        machine["note"] = note
    with open(os.path.join(out, "machine.json"), "w") as fh:
        json.dump(machine, fh, indent=2)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("dest_dir")
    p.add_argument("--note", default=None)
    args = p.parse_args()
    print(record(args.run_dir, args.dest_dir, args.note))


if __name__ == "__main__":
    main()
