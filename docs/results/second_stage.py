"""Issue 30's second stage: a figure classifier retrained on the training slides' own look-alikes, or none.

    python docs/results/second_stage.py RUN_DIR [--data-root ../shared/data] [--seeds 0 1 2] [--out FILE.json]
        [--cache DIR]   # default RUN_DIR/second_stage: maps, windows and classifiers, never in git
        [--tta] [--runtime onnxruntime]
    python docs/results/second_stage.py unet/mitosis --cache DIR ...   # the classifier shipped with the weights
    python docs/results/second_stage.py RUN_DIR --classifier unet/mitosis ...   # a run's network, a shipped classifier

Shipped weights skip steps 1-2: their own classifier (v1's, trained on AMi-Br +
MoNuSeg, its settings once chosen on mitos12_dev) is judged as it ships, by the
same validation slides, so that keeping or dropping it is the protocol's choice.
``--classifier MODEL/TAG`` gives a run folder's network a shipped classifier
instead of training one: the classifier judges windows of the image, not the
network's features, so a fine-tuned network can keep the classifier it shipped with.

The run's network (``best.keras``) proposes candidate figures; the question is
whether a window classifier rescoring them, as ``Detector(classifier=...)`` and
``mitoseg predict`` do, beats the network's own blob score. Both options are
judged by the protocol of ``detector_candidates.py``, on the same maps:

1. Windows (``mitosis_cascade.py``'s 64 px, cropped to 48 px = 12 um) from the
   run's TRAINING frames only (the recipe's slide split), each resampled to the
   detector's 0.25 um/px as ``Detector.predict`` resamples. Positives: the true
   mitosis centres. Negatives: the run's mined look-alikes (``hard_negatives.json``
   of ``mine_hard_negatives.py``, one training frame in two) and, as v1's recipe
   took off-figure dark blobs of its positives' own crops, up to
   ``--blobs-per-frame`` hematoxylin-dark blobs of each frame at least 10 um
   from every true centre.
2. One classifier a seed, ``train_figure_classifier`` at its DEFAULTS; several
   seeds are averaged into one model (``ensemble_figure_classifiers``, as v1
   shipped), then rounded to the float16 weights a shipped classifier has.
3. The 66 validation frames (H15, H17, H18): single-view maps, candidates at
   each pixel threshold of the protocol, scored by the map (network only) or by
   the classifier with 8-fold averaged windows (as ``Detector`` rescores); size
   floor and score threshold by ``calibrate``, pixel threshold by pooled F1 at 5
   um (``detector_candidates.choose``). The option with the higher validation F1
   is the protocol's choice (a tie keeps the network alone).
4. mitos12_dev once per option at its validation settings, through
   ``Detector.predict`` as ``mitoseg predict --mpp 0.2456`` runs it. Nothing is
   chosen there.

``--limit-frames``, ``--limit-dev`` and ``--steps`` cut every stage down to
check the script end to end; such a record says ``"check_only": true`` and is
not a result. The cache is checked against the run's checkpoint and mined file,
so a stale one stops the script instead of being reused.
"""

import argparse
import hashlib
import json
import os
import time

import numpy as np
from detector_candidates import (  # this folder's protocol script
    PIXEL_THRESHOLDS,
    at_resolution,
    choose,
    score_dev,
    validation_frames,
    validation_maps,
)
from mine_hard_negatives import training_frames
from mitosis_cascade import CROP, WINDOW, auc, dark_blobs, float16_classifier, train

from mitoseg_tf.data.hard_negatives import hard_negatives_path, load_hard_negatives
from mitoseg_tf.defaults import DEFAULT_RUNTIME, RUNTIMES
from mitoseg_tf.detection.evaluation import figure_tables
from mitoseg_tf.detection.rescoring import classify_centres, cut_windows
from mitoseg_tf.detector import Detector
from mitoseg_tf.models.figure_classifier import ensemble_figure_classifiers
from mitoseg_tf.training.figure_classifier import DEFAULTS
from mitoseg_tf.zoo.pretrained import load_rescorer, rescorer_entry

BLOB_DISTANCE_UM = 10.0  # v1's dark blobs kept 40 px (10 um) from the crop's figure
MATCH_UM = 5.0


def file_identity(path):
    """Size and modification time: enough to notice a retrained checkpoint or a re-mined file."""
    stat = os.stat(path)
    return f"{os.path.basename(path)} {stat.st_size} bytes, mtime {stat.st_mtime_ns}"


def cached(path, identity, make):
    """The arrays saved at ``path`` for ``identity``, else ``make()``'s, saved there first (compressed)."""
    if os.path.exists(path):
        saved = dict(np.load(path, allow_pickle=False))
        if str(saved.pop("identity")) != identity:
            raise SystemExit(
                f"{path} was made from other inputs ({identity} now); delete the cache folder or give another --cache."
            )
        return saved, True
    arrays = make()
    np.savez_compressed(path, identity=np.array(identity), **arrays)
    return arrays, False


def mined_negatives(run_dir):
    path = hard_negatives_path(run_dir)
    if not os.path.isfile(path):
        raise SystemExit(
            f"{path} not found: mine the run's look-alikes first, "
            f"python docs/results/mine_hard_negatives.py {run_dir} --every 2"
        )
    with open(path) as fh:
        about = json.load(fh)["about"]
    return load_hard_negatives(path), about, file_identity(path)


def make_windows(frames, mined, mpp, blobs_per_frame, seed):
    """Windows of the training frames: positives, negatives and each negative's kind (0 mined look-alike, 1 dark blob)."""
    rng = np.random.default_rng(seed)
    positives, negatives, kinds = [], [], []
    for record in frames:
        work, (truth, looks) = at_resolution(record, mpp, record.points, mined.get(record.id, ()))
        work = work[..., :3]
        blobs = dark_blobs(work, truth, BLOB_DISTANCE_UM / mpp)
        blobs = blobs[rng.permutation(len(blobs))[:blobs_per_frame]]
        positives.append(cut_windows(work, truth, WINDOW))
        negatives += [cut_windows(work, looks, WINDOW), cut_windows(work, blobs, WINDOW)]
        kinds += [0] * len(looks) + [1] * len(blobs)
    return {
        "positives": np.concatenate(positives),
        "negatives": np.concatenate(negatives),
        "negative_kind": np.asarray(kinds, np.int8),
    }


def map_arrays(detector, frames):
    maps = validation_maps(detector, frames)
    return {
        **{f"map_{i}": m for i, (m, _, _) in enumerate(maps)},
        **{f"truth_{i}": t for i, (_, t, _) in enumerate(maps)},
    }


def classifier_tables(classifier, frames, maps, mpp):
    """``{pixel threshold: calibrate's tables}`` with each candidate's score the classifier's, and the map's tables."""
    own = {t: figure_tables(maps, t) for t in PIXEL_THRESHOLDS}
    rescored = {t: [] for t in PIXEL_THRESHOLDS}
    for i, record in enumerate(frames):
        work = at_resolution(record, mpp)[0][..., :3]
        for t in PIXEL_THRESHOLDS:
            centres, areas, _ = own[t][i]
            rescored[t].append((centres, areas, classify_centres(classifier, work, centres).astype(np.float64)))
    return own, rescored


def ranking(own, rescored, maps):
    """Per pixel threshold, the AUC of candidates within 5 um of a mitosis against the rest: chooses nothing."""
    out = {}
    for t in PIXEL_THRESHOLDS:
        near = np.concatenate(
            [
                [len(truth) > 0 and np.hypot(*(truth - c).T).min() <= MATCH_UM / mpp for c in centres]
                for (centres, _, _), (_, truth, mpp) in zip(own[t], maps)
            ]
        ).astype(bool)
        row = {"candidates": int(len(near)), "near_a_mitosis": int(near.sum())}
        if 0 < near.sum() < len(near):
            for name, tables in (("network", own[t]), ("classifier", rescored[t])):
                row[f"auc_{name}"] = float(auc(np.concatenate([s for _, _, s in tables]), near))
        out[f"{t:g}"] = row
    return out


def stamp():
    return time.time(), time.process_time()


def lap(record, step, start):
    """Record ``step``'s wall and CPU seconds (all threads) since ``start``; a new start."""
    record["seconds"][step] = round(time.time() - start[0], 1)
    record["cpu_seconds"][step] = round(time.process_time() - start[1], 1)
    return stamp()


def option_record(best, tried):
    return {
        "settings": {k: best[k] for k in ("pixel_threshold", "min_area_um2", "score_threshold", "figure_score")},
        "validation": best["validation"],
        "validation_held_out": best["validation_held_out"],
        "validation_by_distance": best["validation_by_distance"],
        "pixel_thresholds_tried": tried,
    }


def tuned(network, settings, classifier):
    """The detector ``mitoseg predict`` would run: the network at ``settings``, rescored by ``classifier`` if any."""
    chosen = network.with_settings(chosen_by="ATYPIA-14 validation slides (second_stage.py)", **settings)
    if classifier is None:
        return chosen
    return Detector(
        chosen.model,
        mpp=chosen.mpp,
        settings=chosen.settings,
        classifier=classifier,
        name=chosen.name,
        runtime=chosen.runtime,
    )


def line(name, option):
    v, s = option["validation"], option["settings"]
    dev = option["mitos12_dev_untuned"]["5um"]
    held = option["validation_held_out"]
    return (
        f"{name:<16} pixel > {s['pixel_threshold']:g}, >= {s['min_area_um2']:g} um^2, score >= {s['score_threshold']:.3f} | "
        f"val F1 {v['f1']:.3f} ({v['tp']}/{v['fp']}/{v['fn']})"
        + (f", held out {held['f1']:.3f}" if held else "")
        + f" | mitos12_dev untuned F1 {dev['f1']:.3f} ({dev['tp']}/{dev['fp']}/{dev['fn']})"
    )


def trained_classifier(args, network, record, cache, limit, suffix):
    """A classifier trained on the run's own training frames (steps 1-2 of the docstring), and its windows' counts."""
    training = {"epochs": 1, "steps_per_epoch": args.steps} if args.steps else {}
    mined, mined_about, mined_identity = mined_negatives(args.run_dir)
    record["seeds"] = args.seeds
    record["classifier_training"] = {**DEFAULTS, **training, "window": CROP, "stored_window": WINDOW}
    record["mined_from"] = mined_about
    start = stamp()
    every_training_frame = training_frames(args.run_dir, args.data_root, 1)
    train_frames = every_training_frame[:limit]
    val_slides = {r.slide for r in validation_frames(args.data_root)}
    shared = {r.slide for r in every_training_frame} & val_slides
    strangers = sorted(set(mined) - {r.id for r in every_training_frame})
    if shared or strangers:
        raise SystemExit(f"training and validation must not meet: shared slides {shared}, mined frames {strangers[:5]}")
    identity = f"{mined_identity}; blobs {args.blobs_per_frame}; frames {[r.id for r in train_frames]}"
    windows, record["cached"]["windows"] = cached(
        os.path.join(cache, f"windows_{WINDOW}px{suffix}_blobs{args.blobs_per_frame}.npz"),
        identity,
        lambda: make_windows(train_frames, mined, network.mpp, args.blobs_per_frame, seed=0),
    )
    kinds = np.bincount(windows["negative_kind"], minlength=2)
    record["counts"] = {
        "training_frames": len(train_frames),
        "training_frames_mined": sum(r.id in mined for r in train_frames),
        "positives": int(len(windows["positives"])),
        "negatives_mined_look_alikes": int(kinds[0]),
        "negatives_dark_blobs": int(kinds[1]),
    }
    start = lap(record, "windows", start)
    print(f"windows ({record['seconds']['windows']:.0f} s): {json.dumps(record['counts'])}")

    # The windows' identity names the classifier too: windows made again from other inputs train new ones.
    tag = hashlib.sha1((identity + json.dumps(training, sort_keys=True)).encode()).hexdigest()[:8]
    paths = [os.path.join(cache, f"figure_classifier_{CROP}px_seed{s}_{tag}.keras") for s in args.seeds]
    record["cached"]["classifiers"] = [os.path.exists(p) for p in paths]
    trained = [train(windows, p, s, **training) for p, s in zip(paths, args.seeds)]
    joined = ensemble_figure_classifiers(trained) if len(trained) > 1 else trained[0]
    classifier = float16_classifier(
        joined, cache, f"figure_classifier_{CROP}px_seeds{'-'.join(map(str, args.seeds))}_{tag}"
    )
    lap(record, "classifier_training", start)
    print(
        f"classifier, seeds {args.seeds} ({record['seconds']['classifier_training']:.0f} s, cached {record['cached']['classifiers']})"
    )
    return classifier


def network_and_classifier(args, record, cache, limit, suffix):
    """The network (single view, or 8-fold with ``--tta``) and the classifier the options are judged with.

    A run folder trains its classifier here; shipped weights (``unet/mitosis``) bring the one they ship, so the
    shipped second stage is judged by the same slides as a retrained one."""
    if os.path.isdir(args.run_dir):
        network = Detector.from_run(args.run_dir)
        checkpoint = file_identity(os.path.join(args.run_dir, "best.keras"))
    else:
        network, checkpoint = Detector.from_weights(args.run_dir, rescore=False), f"shipped weights {args.run_dir}"
    network = network.with_settings(tta=args.tta, runtime=args.runtime)
    if network.mpp is None:
        raise SystemExit(f"{args.run_dir}: detection.json states no mpp; the windows need the detector's pixel size.")
    shipped = args.classifier or (None if os.path.isdir(args.run_dir) else args.run_dir)
    if shipped is None:
        classifier = trained_classifier(args, network, record, cache, limit, suffix)
        record["classifier"] = "trained here on the run's training frames"
    else:
        model, _, tag = shipped.partition("/")
        try:
            classifier = load_rescorer(model, tag)
        except (KeyError, ValueError) as err:
            raise SystemExit(f"{shipped}: {err}") from None
        record["classifier"] = f"shipped with {shipped}: " + rescorer_entry(model, tag)["training"]
    return network, classifier, checkpoint


def run(args):
    limit = args.limit_frames
    check_only = bool(limit or args.limit_dev or args.steps)
    suffix = f"_first{limit}" if limit else ""
    name = args.run_dir if not os.path.isdir(args.run_dir) else os.path.basename(os.path.abspath(args.run_dir))
    cache = args.cache or (os.path.join(args.run_dir, "second_stage") if os.path.isdir(args.run_dir) else None)
    if cache is None:
        raise SystemExit(f"{args.run_dir} is shipped weights, not a run folder: give --cache DIR for its maps.")
    os.makedirs(cache, exist_ok=True)
    record = {
        "run": name,
        "check_only": check_only,
        "limits": {"frames": limit, "dev_fields": args.limit_dev, "classifier_steps": args.steps},
        "tta": args.tta,
        "runtime": args.runtime,
        "seconds": {},
        "cpu_seconds": {},
        "cached": {},
        "counts": {},
    }
    network, classifier, checkpoint = network_and_classifier(args, record, cache, limit, suffix)

    start = stamp()
    val_frames = sorted(validation_frames(args.data_root), key=lambda r: r.id)[:limit]
    views = "tta8" if args.tta else "single"
    identity = f"{checkpoint}; mpp {network.mpp}; {views}; frames {[r.id for r in val_frames]}"
    arrays, record["cached"]["validation_maps"] = cached(
        os.path.join(cache, f"validation_maps{suffix}{'_tta8' if args.tta else ''}.npz"),
        identity,
        lambda: map_arrays(network, val_frames),
    )
    maps = [(arrays[f"map_{i}"], arrays[f"truth_{i}"], network.mpp) for i in range(len(val_frames))]
    record["counts"]["validation_frames"] = len(maps)
    record["counts"]["validation_mitoses"] = int(sum(len(t) for _, t, _ in maps))
    start = lap(record, "validation_maps", start)
    own, rescored = classifier_tables(classifier, val_frames, maps, network.mpp)
    start = lap(record, "validation_classifier_scores", start)
    options = {
        "network_only": option_record(*choose(maps)),
        "with_classifier": option_record(*choose(maps, rescored)),
    }
    record["ranking_auc"] = ranking(own, rescored, maps)
    start = lap(record, "validation_choice", start)
    f1 = {name: o["validation"]["f1"] for name, o in options.items()}
    record["chosen_on_validation"] = "with_classifier" if f1["with_classifier"] > f1["network_only"] else "network_only"
    record["chosen_by"] = (
        f"ATYPIA-14 validation slides H15, H17, H18 ({len(maps)} frames), pooled F1 at 5 um; "
        "a tie keeps the network alone"
    )
    print(f"validation ({len(maps)} frames) chooses {record['chosen_on_validation']}: {json.dumps(f1)}")

    for name, option in options.items():
        detector = tuned(network, option["settings"], classifier if name == "with_classifier" else None)
        option["detector"] = detector.describe()
        option["mitos12_dev_untuned"] = score_dev(detector, args.data_root, args.limit_dev)
        start = lap(record, f"mitos12_dev_{name}", start)
    record["mitos12_dev_note"] = (
        "a test: each option predicted once at the settings its validation chose, as mitoseg predict --mpp 0.2456 "
        "runs it; nothing (option, threshold, classifier) was chosen on mitos12_dev"
    )
    record["options"] = options

    if check_only:
        print("CHECK ONLY (--limit-frames / --limit-dev / --steps): the numbers below are not results")
    for name, option in options.items():
        print(line(name, option))
    print(f"validation chooses: {record['chosen_on_validation']} (mitos12_dev chose nothing)")
    print(f"seconds: {json.dumps(record['seconds'])}\nCPU seconds: {json.dumps(record['cpu_seconds'])}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(record, fh, indent=2)
    return record


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "run_dir",
        help="a run folder with best.keras, detection.json and hard_negatives.json, "
        "or shipped weights MODEL/TAG with a figure classifier (judged as shipped, nothing trained)",
    )
    p.add_argument("--data-root", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one classifier each, averaged")
    p.add_argument("--out", default=None, help="the JSON record")
    p.add_argument("--cache", default=None, help="maps, windows and classifiers (default RUN_DIR/second_stage)")
    p.add_argument("--tta", action="store_true", help="8-fold averaged maps (their own candidate)")
    p.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=RUNTIMES, help="what runs the network (speed only)")
    p.add_argument(
        "--classifier",
        default=None,
        metavar="MODEL/TAG",
        help="judge a run's network with this shipped figure classifier instead of training one",
    )
    p.add_argument("--blobs-per-frame", type=int, default=10, help="dark-blob negatives kept per training frame")
    p.add_argument(
        "--limit-frames", type=int, default=None, help="check only: the first N training and validation frames"
    )
    p.add_argument("--limit-dev", type=int, default=None, help="check only: the first N mitos12_dev fields")
    p.add_argument("--steps", type=int, default=None, help="check only: train each classifier 1 epoch of N steps")
    run(p.parse_args())


if __name__ == "__main__":
    main()
