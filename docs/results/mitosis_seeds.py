"""How much of the mitosis U-Net's validation F1 is its seed? Scores trained checkpoints and their average.

    mitoseg train --recipe zoo/recipes/mitosis_unet.yaml --data-dir DATA --output-dir runs \\
        --run-name mitosis_unet_seed1 --seed 1                                    # 45 min on 2 cores
    python docs/results/mitosis_seeds.py DATA runs/mitosis_unet_seed1/best.keras   # about 6 min

Scores the shipped weights, each checkpoint given, and the per-pixel average of
all their maps (an ensemble) on the 5 MITOS-2012 validation fields, on plain and
on 8-fold averaged maps, choosing the minimum size and score threshold on the
same fields as the recipe does. ``blind`` counts true figures with no
probability above 0.5 within 5 um, and ``shared`` how many of those the shipped
network is blind to as well. Results: docs/RESULTS.md, "Seeds" and "GroupNorm"
(any checkpoint works, e.g. runs/mitosis_unet_group_norm/best.keras).
"""

import sys

import numpy as np
from mitosis_figures import calibrated_row, peak_near, validation_fields  # this folder: the script runs as a file

from mitoseg_tf.data.formats.mitos12 import MPP
from mitoseg_tf.inference import predict_image
from mitoseg_tf.zoo import build
from mitoseg_tf.zoo.checkpoint import load_checkpoint


def blind_set(maps, centres):
    """Indices (over all fields) of the true figures with no probability above 0.5 within 5 um."""
    peaks = [p for m, c in zip(maps, centres) for p in peak_near(m, c, 5.0 / MPP["A"])]
    return {i for i, p in enumerate(peaks) if p < 0.5}


def main(data_root, *checkpoints):
    fields, centres = validation_fields(data_root)
    models = {"shipped (seed 0)": build("unet", weights="mitosis", input_shape=(None, None, 3))}
    models.update({path: load_checkpoint(path) for path in checkpoints})
    for tta in (False, True):
        print(f"{'8-fold averaged maps' if tta else 'plain maps':<34}  TP  FP  FN  F1     min  thresh  blind shared")
        every = {label: [predict_image(model, image, tta=tta) for image in fields] for label, model in models.items()}
        if len(every) > 1:
            every[f"average of all {len(every)}"] = [np.mean(m, axis=0) for m in zip(*every.values())]
        shipped_blind = blind_set(next(iter(every.values())), centres)
        for label, maps in every.items():
            blind = blind_set(maps, centres)
            print(
                f"{label:<34} {calibrated_row(maps, centres)}  {len(blind):>5} {len(blind & shipped_blind):>6}",
                flush=True,
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
