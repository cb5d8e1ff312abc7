"""Choose a trained detector's settings on the ATYPIA-14 validation slides, then test them once on mitos12_dev.

    python docs/results/detector_candidates.py RUN_DIR [--data-root ../shared/data] [--tta] [--out FILE.json]
    python docs/results/detector_candidates.py unet/mitosis ...   # shipped weights, network only
    ... --runtime onnxruntime   # the same maps (within 1e-6) in half the time; speed, not results

Shipped weights are judged by the same protocol without their second stage (the
figure classifier rescoring needs images, not maps), so that a v1 baseline and a v2
candidate have their settings chosen by the same slides.

The protocol of issue 30, in one place so that every candidate is judged alike:

1. The run's network (``best.keras``, the epoch its validation mitosis Dice chose)
   predicts the 66 frames of the validation slides H15, H17, H18 (the recipe's
   split), each resampled from 0.2273 to the detector's 0.25 um/px as
   ``Detector.predict`` resamples.
2. On those maps, and only there: the pixel threshold (``PIXEL_THRESHOLDS``), the
   size floor and the figure-score threshold (``calibrate``), by pooled F1 under the
   5-um rule. ``--tta`` scores 8-fold averaged maps instead (its own candidate).
3. The five mitos12_dev fields are then predicted exactly as ``mitoseg predict
   --mpp 0.2456`` runs the detector at those settings: nothing is chosen there.

Writes (``--out``) the chosen settings, the validation scores (and each
leave-one-frame-out estimate), the mitos12_dev scores per field and pooled at 5
and 8 um, and the seconds each step took. The run's own record is copied beside
it by ``record_run.py``.
"""

import argparse
import json
import os
import time

import numpy as np

from mitoseg_tf.data.formats import read_records
from mitoseg_tf.data.formats.mitos12 import MPP, read_centre_list
from mitoseg_tf.data.images import read_image
from mitoseg_tf.defaults import DEFAULT_RUNTIME, RUNTIMES
from mitoseg_tf.detection.evaluation import calibrate
from mitoseg_tf.detection.matching import match_points
from mitoseg_tf.detector import Detector
from mitoseg_tf.inference.resample import scale_factors, to_resolution
from mitoseg_tf.training.run import load_recipe

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "zoo", "recipes", "mitosis_v2.yaml")
PIXEL_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
RULES_UM = (5.0, 8.0)


def split_frames(component, split, data_root):
    """The frames (records of the voc reader) of a recipe's ``voc`` component in ``split``, as its split names them."""
    options = component["options"]
    slides = set(options["split_ids"][split])
    records = read_records("voc", os.path.join(data_root, component["data_dir"]), preset=options["preset"])
    return [r for r in records if r.slide in slides]


def validation_frames(data_root):
    """The recipe's validation frames."""
    return split_frames(load_recipe(RECIPE).data_options["validation"], "validation", data_root)


def at_resolution(record, mpp, *centres):
    """``record``'s frame resampled to ``mpp`` as ``Detector.predict`` resamples it, and each (K, 2) (row, col)
    array of ``centres`` (its pixels) scaled with it."""
    image = read_image(record.image)
    work = to_resolution(image, record.mpp, mpp)
    factors = scale_factors(image.shape[:2], work.shape[:2])
    return work, [np.asarray(c, np.float64).reshape(-1, 2) * factors for c in centres]


def validation_maps(detector, frames):
    """``calibrate``'s input: per frame (map at the detector's resolution, true centres there, its mpp)."""
    maps = []
    for record in frames:
        work, (truth,) = at_resolution(record, detector.mpp, record.points)
        maps.append((detector.probability_native(work).astype(np.float16), truth, detector.mpp))
    return maps


def choose(maps, rescored=None):
    """The best of ``calibrate`` at each pixel threshold, by validation F1 (ties: the lower threshold).

    ``rescored``: ``{pixel threshold: calibrate's tables}``, the same candidates scored by a figure
    classifier, so that a detector with a second stage is chosen by this same rule."""
    if rescored is None:
        tried = [calibrate(maps, pixel_threshold=t) for t in PIXEL_THRESHOLDS]
    else:
        tried = [calibrate(maps, pixel_threshold=t, tables=rescored[t], score="classifier") for t in PIXEL_THRESHOLDS]
    best = max(tried, key=lambda s: (s["validation"]["f1"], -s["pixel_threshold"]))
    summary = {
        f"{s['pixel_threshold']:g}": {
            "f1": s["validation"]["f1"],
            "min_area_um2": s["min_area_um2"],
            "score_threshold": s["score_threshold"],
        }
        for s in tried
    }
    return best, summary


def score_dev(detector, data_root, limit=None):
    """mitos12_dev exactly as ``mitoseg predict --mpp 0.2456`` runs ``detector``: per field and pooled.

    ``limit``: the first that many fields only (a quick check of a script, never a result)."""
    root = os.path.join(data_root, "mitos12_dev")
    truth, mpp = read_centre_list(os.path.join(root, "mitoses.csv")), MPP["A"]
    fields, totals = {}, {um: np.zeros(3, int) for um in RULES_UM}
    for stem in sorted(truth)[:limit]:
        prediction = detector.predict(
            read_image(os.path.join(root, "images", f"{stem}.jpg")), mpp=mpp, keep_probability=False
        )
        found = np.array([f.centroid for f in prediction.figures], np.float64).reshape(-1, 2)
        fields[stem] = {}
        for um in RULES_UM:
            pairs, extra, missed = match_points(
                found, np.asarray(truth[stem], np.float64).reshape(-1, 2), max_distance=um / mpp
            )
            row = np.array([len(pairs), len(extra), len(missed)])
            totals[um] += row
            fields[stem][f"{um:g}um"] = row.tolist()
    pooled = {}
    for um, (tp, fp, fn) in totals.items():
        pooled[f"{um:g}um"] = {
            "tp": int(tp),
            "fp": int(fp),
            "fn": int(fn),
            "f1": 2 * tp / max(2 * tp + fp + fn, 1),
            "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1),
        }
    return {"fields": fields, **pooled}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a run folder, or shipped weights <model>/<tag> (network only)")
    p.add_argument("--data-root", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    p.add_argument("--tta", action="store_true", help="choose and test on 8-fold averaged maps")
    p.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=RUNTIMES, help="what runs the network (speed only)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if os.path.isdir(args.run_dir):
        detector, name = Detector.from_run(args.run_dir), os.path.basename(os.path.abspath(args.run_dir))
    else:
        detector, name = Detector.from_weights(args.run_dir, rescore=False), args.run_dir
    detector = detector.with_settings(tta=args.tta, runtime=args.runtime)
    record = {"run": name, "tta": args.tta, "runtime": args.runtime, "seconds": {}}
    start = time.time()
    frames = validation_frames(args.data_root)
    maps = validation_maps(detector, frames)
    record["seconds"]["validation_maps"] = round(time.time() - start, 1)
    best, record["pixel_thresholds_tried"] = choose(maps)
    record["validation_frames"], record["validation_figures"] = len(frames), int(sum(len(f.points) for f in frames))
    record["settings"] = {k: best[k] for k in ("pixel_threshold", "min_area_um2", "score_threshold", "figure_score")}
    record["settings"]["tta"] = args.tta
    record["chosen_by"] = "ATYPIA-14 validation slides H15, H17, H18 (66 frames), pooled F1 at 5 um"
    record["validation"] = best["validation"]
    record["validation_held_out"] = best["validation_held_out"]
    record["validation_by_distance"] = best["validation_by_distance"]
    print(f"validation ({record['seconds']['validation_maps']:.0f} s): {json.dumps(record['pixel_thresholds_tried'])}")
    print(
        f"chosen {record['settings']}: F1 {best['validation']['f1']:.3f} "
        f"(held out {best['validation_held_out']['f1']:.3f})"
    )
    start = time.time()
    tuned = detector.with_settings(
        chosen_by="ATYPIA-14 validation slides", **{k: v for k, v in record["settings"].items() if k != "figure_score"}
    )
    record["mitos12_dev_untuned"] = score_dev(tuned, args.data_root)
    record["seconds"]["mitos12_dev"] = round(time.time() - start, 1)
    dev = record["mitos12_dev_untuned"]["5um"]
    print(
        f"mitos12_dev untuned: TP {dev['tp']} FP {dev['fp']} FN {dev['fn']} F1 {dev['f1']:.3f} recall {dev['recall']:.3f}"
    )
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(record, fh, indent=2)


if __name__ == "__main__":
    main()
