"""Score the shipped mitosis weights on the 5 MITOS-2012 validation fields and draw docs/results/mitosis_*.png.

    python docs/results/mitosis_figures.py ../shared/data [MODEL] [--no-rescore]   # MODEL/mitosis (default unet)

Uses exactly what ``mitoseg predict`` uses: the float16 weights shipped in the
package, the second-stage figure classifier shipped beside them (unless
``--no-rescore``) and the figure settings chosen on these fields (never on
anything else). The drawing is of what ``mitoseg predict`` gives by default.
"""

import json
import os
import sys

import numpy as np

from mitoseg_tf.data.formats.mitos12 import MPP, read_centre_list
from mitoseg_tf.data.images import read_image
from mitoseg_tf.detection import extract_figures, score_images
from mitoseg_tf.detection.evaluation import REPORT_DISTANCES_UM, calibrate
from mitoseg_tf.detection.rescoring import rescore_figures
from mitoseg_tf.inference import predict_image
from mitoseg_tf.training.report import plot_detections
from mitoseg_tf.zoo import build
from mitoseg_tf.zoo.pretrained import load_rescorer, weights_entry


def peak_near(probability, centres, radius_px):
    """The highest probability within a square of ``radius_px`` around each (row, col) centre."""
    reach = round(radius_px)
    return [
        float(
            probability[max(int(r) - reach, 0) : int(r) + reach + 1, max(int(c) - reach, 0) : int(c) + reach + 1].max()
        )
        for r, c in centres
    ]


def validation_fields(data_root):
    """The mitos12_dev fields, in name order: ``(RGB images, true (row, col) centres float32 (K, 2))``."""
    root = os.path.join(data_root, "mitos12_dev")
    truth = read_centre_list(os.path.join(root, "mitoses.csv"))
    images = [read_image(os.path.join(root, "images", f"{stem}.jpg"))[..., :3] for stem in sorted(truth)]
    return images, [np.asarray(truth[stem], np.float32).reshape(-1, 2) for stem in sorted(truth)]


def calibrated_row(maps, centres):
    """``TP FP FN  F1  min-size threshold`` at the size and score threshold chosen on these maps, as the recipe does."""
    settings = calibrate([(m.astype(np.float16), c, MPP["A"]) for m, c in zip(maps, centres)])
    v = settings["validation"]
    return f"{v['tp']:>3} {v['fp']:>3} {v['fn']:>3}  {v['f1']:.3f}  {settings['min_area_um2']:>4g} {settings['score_threshold']:.3f}"


def main(data_root, name="unet", rescore=True):
    root = os.path.join(data_root, "mitos12_dev")
    truth = read_centre_list(os.path.join(root, "mitoses.csv"))
    entry = weights_entry(name, "mitosis")
    rescore = rescore and "rescorer" in entry
    # as mitoseg predict: the classifier's settings replace the map's own, the maps stay the same
    settings = {**entry["detection"], **(entry["rescorer"]["detection"] if rescore else {})}
    classifier = load_rescorer(name, "mitosis") if rescore else None
    model = build(name, weights="mitosis", input_shape=(None, None, 3))
    mpp = MPP["A"]
    fields, per_image, peaks = [], {}, []
    for stem in sorted(truth):
        image = read_image(os.path.join(root, "images", f"{stem}.jpg"))
        probability = predict_image(model, image, tta=settings.get("tta", False))  # the maps its settings came from
        # is a miss a threshold or a blind spot?
        peaks += peak_near(probability, truth[stem], 5.0 / mpp)
        figures = extract_figures(
            probability, mpp=mpp, threshold=settings["pixel_threshold"], min_area_um2=settings["min_area_um2"]
        )
        figures = rescore_figures(classifier, image, figures) if rescore else figures
        centres = np.array([f.centroid for f in figures if f.score >= settings["score_threshold"]]).reshape(-1, 2)
        fields.append((stem, image, truth[stem], centres))
        per_image[stem] = score_images([(centres, np.ones(len(centres)), truth[stem])], 5.0 / mpp)
    pooled = {
        f"{d:g}um": score_images([(c, np.ones(len(c)), t) for _, _, t, c in fields], d / mpp)
        for d in REPORT_DISTANCES_UM
    }
    here = os.path.dirname(os.path.abspath(__file__))
    plot_detections(
        [(stem, image, t, c, 5.0 / mpp) for stem, image, t, c in fields],
        os.path.join(here, f"mitosis_{name}_detections{'' if rescore else '_unrescored'}.png"),
        title=f"{name} (shipped weights{', candidates rescored' if rescore else ''}) on the MITOS-2012 validation fields, 5-um rule",
    )
    peaks = np.sort(peaks)
    print(
        json.dumps(
            {
                "pooled": pooled,
                "per_image_5um": per_image,
                "peak_probability_at_true_centres": np.round(peaks, 3).tolist(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(*[a for a in sys.argv[1:] if not a.startswith("--")], rescore="--no-rescore" not in sys.argv)
