"""How much of the mitosis U-Net's validation F1 is its seed? Scores trained checkpoints and their average.

    mitoseg train --recipe zoo/recipes/mitosis_unet.yaml --data-dir DATA --output-dir runs \\
        --run-name mitosis_unet_seed1 --seed 1                                    # 45 min on 2 cores
    python docs/results/mitosis_seeds.py DATA runs/mitosis_unet_seed1/best.keras   # about 6 min

Scores the shipped weights, each checkpoint given, and the per-pixel average of
all their maps (an ensemble) on the 5 MITOS-2012 validation fields, on plain and
on 8-fold averaged maps, choosing the minimum size and score threshold on the
same fields as the recipe does. Results: docs/RESULTS.md, "Seeds".
"""

import os
import sys

import numpy as np

from mitoseg_tf.data.formats.mitos12 import MPP, read_centre_list
from mitoseg_tf.data.images import read_image
from mitoseg_tf.detection.evaluation import calibrate
from mitoseg_tf.inference import predict_image
from mitoseg_tf.training.checkpoint import load_checkpoint
from mitoseg_tf.zoo import build


def field_maps(model, fields, tta):
    return [predict_image(model, image, tta=tta).astype(np.float32) for image in fields]


def row(label, maps, centres):
    settings = calibrate([(m.astype(np.float16), c, MPP["A"]) for m, c in zip(maps, centres)])
    v = settings["validation"]
    return f"{label:<34} {v['tp']:>3} {v['fp']:>3} {v['fn']:>3}  {v['f1']:.3f}  {settings['min_area_um2']:>4g} {settings['score_threshold']:.3f}"


def main(data_root, *checkpoints):
    root = os.path.join(data_root, "mitos12_dev")
    truth = read_centre_list(os.path.join(root, "mitoses.csv"))
    fields = [read_image(os.path.join(root, "images", f"{stem}.jpg"))[..., :3] for stem in sorted(truth)]
    centres = [np.asarray(truth[stem], np.float32).reshape(-1, 2) for stem in sorted(truth)]
    models = {"shipped (seed 0)": build("unet", weights="mitosis", input_shape=(None, None, 3))}
    models.update({path: load_checkpoint(path) for path in checkpoints})
    for tta in (False, True):
        print(f"{'8-fold averaged maps' if tta else 'plain maps':<34}  TP  FP  FN  F1     min  thresh")
        every = {label: field_maps(model, fields, tta) for label, model in models.items()}
        for label, maps in every.items():
            print(row(label, maps, centres), flush=True)
        if len(every) > 1:
            print(row(f"average of all {len(every)}", [np.mean(m, axis=0) for m in zip(*every.values())], centres))


if __name__ == "__main__":
    main(*sys.argv[1:])
