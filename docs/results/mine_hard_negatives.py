"""Mine a finished run's false figures on its own training frames: the hard-negative round of issue 30.

    python docs/results/mine_hard_negatives.py RUN_DIR [--every K] [--data-root ../shared/data]

The run's detector (``best.keras`` at the settings its own validation chose,
``detection.json``) predicts the training frames of the recipe's split, exactly as
``Detector.predict`` resamples them; every figure farther than 5 um from every true
centre is written to ``RUN_DIR/hard_negatives.json`` for the next round's
``hard_negatives: {from_run: RUN_DIR, oversample: k}``. No validation frame is
read. ``--every K`` mines one training frame in K (sorted by name): a pass over
all 199 frames costs about half an hour on a 2-core CPU, and a frame left out
keeps its own annotated look-alikes.
"""

import argparse
import dataclasses
import json
import os
import time

import numpy as np
from detector_candidates import split_frames  # this folder's protocol script

from mitoseg_tf.data.hard_negatives import mine_hard_negatives, save_hard_negatives
from mitoseg_tf.data.images import read_image
from mitoseg_tf.detector import Detector


def training_frames(run_dir, data_root, every):
    """The run's training frames of its ``voc`` component (one in ``every``), as its own split names them."""
    with open(os.path.join(run_dir, "config.json")) as fh:
        train = json.load(fh)["data_options"]["train"]
    (component,) = [c for c in train if c["data"] == "voc"]
    return sorted(split_frames(component, "train", data_root), key=lambda r: r.id)[::every]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--every", type=int, default=1, help="mine one training frame in K (default: all)")
    p.add_argument("--data-root", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    args = p.parse_args()
    detector = Detector.from_run(args.run_dir)
    start = time.time()
    frames = training_frames(args.run_dir, args.data_root, args.every)
    examples = ({"image": read_image(r.image), "points": r.points, "id": r.id, "mpp": r.mpp} for r in frames)
    mined = mine_hard_negatives(detector, examples)
    found = int(sum(len(v) for v in mined.values()))
    path = save_hard_negatives(
        args.run_dir,
        mined,
        frames=len(frames),
        every=args.every,
        settings=dataclasses.asdict(detector.settings),
        match_distance_um=5.0,
        seconds=round(time.time() - start, 1),
    )
    per_frame = np.mean([len(v) for v in mined.values()])
    print(f"{found} false figures on {len(frames)} training frames ({per_frame:.1f} a frame) -> {path}")


if __name__ == "__main__":
    main()
