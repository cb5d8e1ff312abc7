"""How much of the mitosis U-Net's validation F1 is its seed? Scores trained checkpoints and their average.

    mitoseg train --recipe zoo/recipes/mitosis_unet.yaml --data-dir DATA --output-dir runs \\
        --run-name mitosis_unet_seed1 --seed 1                                    # 45 min on 2 cores
    python docs/results/mitosis_seeds.py DATA runs/mitosis_unet_seed1/best.keras   # about 6 min

Scores the shipped weights, each checkpoint given, and the per-pixel average of
all their maps (an ensemble) on the 5 MITOS-2012 validation fields, on plain and
on 8-fold averaged maps, choosing the minimum size and score threshold on the
same fields as the recipe does. Results: docs/RESULTS.md, "Seeds".
"""

import sys

import numpy as np

from mitoseg_tf.inference import predict_image
from mitoseg_tf.training.checkpoint import load_checkpoint
from mitoseg_tf.zoo import build

from mitosis_figures import calibrated_row, validation_fields  # this folder: the script runs as a file


def main(data_root, *checkpoints):
    fields, centres = validation_fields(data_root)
    models = {"shipped (seed 0)": build("unet", weights="mitosis", input_shape=(None, None, 3))}
    models.update({path: load_checkpoint(path) for path in checkpoints})
    for tta in (False, True):
        print(f"{'8-fold averaged maps' if tta else 'plain maps':<34}  TP  FP  FN  F1     min  thresh")
        every = {label: [predict_image(model, image, tta=tta) for image in fields] for label, model in models.items()}
        for label, maps in every.items():
            print(f"{label:<34} {calibrated_row(maps, centres)}", flush=True)
        if len(every) > 1:
            average = [np.mean(m, axis=0) for m in zip(*every.values())]
            print(f"{f'average of all {len(every)}':<34} {calibrated_row(average, centres)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
