"""What the second-stage figure classifier adds to `mitoseg predict`'s time on one whole field.

    python benchmarks/rescoring.py [--image ../shared/data/mitos12_dev/images/A01_04.jpg] [--candidates 100] [--repeat 3]

Times, on one image, with the shipped weights: the U-Net's probability map
(plain and 8-fold averaged), the candidate figures (pixel > 0.2), and the
shipped classifier's 8-fold averaged scores of ``--candidates`` windows, for the
shipped ensemble and for one member alone. Best of ``--repeat``; prints a table
with each step's share of the averaged map's time. Without ``--image`` a
2084x2084 field of noise stands in (the map's time does not depend on content).
"""

import argparse
import os
import sys

import numpy as np

# Run as a script: the repository root makes the shared timing helper importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from benchmarks.timing import best_of  # noqa: E402


def main():
    from mitoseg_tf.data.images import read_image
    from mitoseg_tf.detection import classify_centres, extract_figures
    from mitoseg_tf.inference import predict_image
    from mitoseg_tf.models.figure_classifier import build_figure_classifier
    from mitoseg_tf.zoo import build
    from mitoseg_tf.zoo.pretrained import load_rescorer, rescorer_entry

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default=None, help="an RGB field (default: 2084x2084 noise)")
    p.add_argument("--candidates", type=int, default=100, help="windows scored by the classifier")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    image = read_image(args.image)[..., :3] if args.image else rng.integers(0, 256, (2084, 2084, 3), dtype=np.uint8)
    unet = build("unet", weights="mitosis", input_shape=(None, None, 3))
    ensemble = load_rescorer("unet", "mitosis")
    single = build_figure_classifier(**{**rescorer_entry("unet", "mitosis")["arguments"], "members": 1})
    centres = rng.uniform(0, min(image.shape[:2]), (args.candidates, 2))

    probability = predict_image(unet, image, tta=True)  # warm-up, and the map the candidates come from
    rows = [
        ("U-Net map, plain", best_of(args.repeat, lambda: predict_image(unet, image))),
        ("U-Net map, 8-fold averaged (shipped)", best_of(args.repeat, lambda: predict_image(unet, image, tta=True))),
        (
            "candidates (pixel > 0.2)",
            best_of(args.repeat, lambda: extract_figures(probability, mpp=0.25, threshold=0.2, min_area_um2=50)),
        ),
    ]
    for label, model in ((f"{ensemble.get_config()['name']}, shipped ensemble", ensemble), ("one member", single)):
        classify_centres(model, image, centres)  # warm-up
        rows.append(
            (
                f"classifier: {args.candidates} windows x 8 views, {label}",
                best_of(args.repeat, lambda model=model: classify_centres(model, image, centres)),
            )
        )
    reference = rows[1][1]
    print(f"image {image.shape[0]}x{image.shape[1]}, best of {args.repeat}\n")
    print("| step | seconds | / averaged map |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} | {seconds / reference:.3f} |")


if __name__ == "__main__":
    main()
