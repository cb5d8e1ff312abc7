"""Score a shipped detector on the 5 mitos12_dev fields exactly as ``mitoseg predict --mpp 0.2456`` runs it.

    python docs/results/detector_dev_check.py ../shared/data [--weights unet/mitosis] [--out docs/results/detector_dev.json]

No setting is chosen here: the detector's card decides everything, and the
fields are resampled from 0.2456 um/px to the detector's resolution as
``Detector.predict`` does. Prints TP/FP/FN/F1 at the 5-um and 8-um rules, per
field and pooled, and writes them as JSON.
"""

import argparse
import json
import os
import time

import numpy as np

from mitoseg_tf.data.formats.mitos12 import MPP, read_centre_list
from mitoseg_tf.data.images import read_image
from mitoseg_tf.detection.matching import match_points
from mitoseg_tf.detector import Detector


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data_root")
    p.add_argument("--weights", default="unet/mitosis")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    root = os.path.join(args.data_root, "mitos12_dev")
    truth = read_centre_list(os.path.join(root, "mitoses.csv"))
    detector = Detector.from_weights(args.weights)
    print(detector.describe())
    mpp = MPP["A"]
    record = {"weights": args.weights, "detector": detector.describe(), "input_mpp": mpp, "fields": {}}
    totals = {5.0: np.zeros(3, int), 8.0: np.zeros(3, int)}
    start = time.time()
    for stem in sorted(truth):
        image = read_image(os.path.join(root, "images", f"{stem}.jpg"))
        prediction = detector.predict(image, mpp=mpp, keep_probability=False)
        found = np.array([f.centroid for f in prediction.figures], np.float64).reshape(-1, 2)
        true = np.asarray(truth[stem], np.float64).reshape(-1, 2)
        record["fields"][stem] = {}
        for um in totals:
            pairs, unmatched_found, unmatched_true = match_points(found, true, max_distance=um / mpp)
            row = np.array([len(pairs), len(unmatched_found), len(unmatched_true)])
            totals[um] += row
            record["fields"][stem][f"{um:g}um"] = row.tolist()
        print(stem, record["fields"][stem], f"{time.time() - start:.0f} s")
    for um, (tp, fp, fn) in totals.items():
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        record[f"{um:g}um"] = {
            "tp": int(tp),
            "fp": int(fp),
            "fn": int(fn),
            "f1": f1,
            "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1),
        }
        print(f"{um:g}-um rule: TP {tp} FP {fp} FN {fn} F1 {f1:.3f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(record, fh, indent=2)


if __name__ == "__main__":
    main()
