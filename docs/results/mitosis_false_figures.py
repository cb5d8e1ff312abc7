"""How dark are the true and the false figures of two mitosis networks? A test of why GroupNorm's are false.

    python docs/results/mitosis_false_figures.py ../shared/data runs/mitosis_unet_group_norm/best.keras

Predicts the 5 MITOS-2012 validation fields with the shipped network and the
given checkpoint (plain maps), keeps the figures of each at the size and
score threshold chosen on these fields (as the recipe does), calls a figure
true when a true centre lies within 5 um, and prints the hematoxylin optical
density (scikit-image colour deconvolution) averaged over a 2-um disk at each
figure's centre (the same area whatever the blob's shape): quartiles for the
true and the false figures of each network, and at the true centres.
Results: docs/RESULTS.md, "GroupNorm".
"""

import sys

import numpy as np
from mitosis_figures import validation_fields  # this folder: the script runs as a file
from skimage.color import rgb2hed

from mitoseg_tf.data.formats.mitos12 import MPP
from mitoseg_tf.detection import extract_figures
from mitoseg_tf.detection.evaluation import calibrate
from mitoseg_tf.inference import predict_image
from mitoseg_tf.zoo import build
from mitoseg_tf.zoo.checkpoint import load_checkpoint

DISK_UM = 2.0


def disk_mean(values, centre):
    """Mean of ``values`` over the 2-um disk at (row, col) ``centre``, clipped to the image."""
    radius = DISK_UM / MPP["A"]
    r, c = (int(round(v)) for v in centre)
    reach = int(np.ceil(radius))
    rows, cols = np.ogrid[-reach : reach + 1, -reach : reach + 1]
    inside = rows**2 + cols**2 <= radius**2
    r0, c0 = max(r - reach, 0), max(c - reach, 0)
    window = values[r0 : r + reach + 1, c0 : c + reach + 1]
    inside = inside[r0 - (r - reach) :, c0 - (c - reach) :][: window.shape[0], : window.shape[1]]
    return float(window[inside].mean())


def hematoxylin_maps(fields):
    return [rgb2hed(image)[..., 0] for image in fields]


def figure_darkness(maps, hematoxylin, centres, settings):
    """(hematoxylin OD of the true figures, of the false figures) at ``settings``."""
    true, false = [], []
    reach = 5.0 / MPP["A"]
    for probability, density, truth in zip(maps, hematoxylin, centres):
        figures = extract_figures(
            probability,
            mpp=MPP["A"],
            threshold=settings["pixel_threshold"],
            min_area_um2=settings["min_area_um2"],
            outlines=False,
        )
        for figure in figures:
            if figure.score < settings["score_threshold"]:
                continue
            darkness = disk_mean(density, figure.centroid)
            near = len(truth) and np.min(np.hypot(*(truth - np.asarray(figure.centroid)).T)) <= reach
            (true if near else false).append(darkness)
    return np.asarray(true), np.asarray(false)


def quartiles(values):
    if not len(values):
        return "-"
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return f"{q2:.3f} ({q1:.3f}-{q3:.3f}), n={len(values)}"


def main(data_root, *checkpoints):
    fields, centres = validation_fields(data_root)
    hematoxylin = hematoxylin_maps(fields)
    at_truth = [disk_mean(d, c) for d, truth in zip(hematoxylin, centres) for c in truth]
    models = {"shipped": build("unet", weights="mitosis", input_shape=(None, None, 3))}
    models.update({path: load_checkpoint(path) for path in checkpoints})
    print(f"{'network':<45} hematoxylin OD, median (quartiles): true figures | false figures")
    for label, model in models.items():
        maps = [predict_image(model, image) for image in fields]
        settings = calibrate([(m.astype(np.float16), c, MPP["A"]) for m, c in zip(maps, centres)])
        true, false = figure_darkness(maps, hematoxylin, centres, settings)
        print(f"{label:<45} {quartiles(true)} | {quartiles(false)}", flush=True)
    print(f"{'the 32 true centres':<45} {quartiles(at_truth)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
