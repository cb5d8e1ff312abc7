"""Where OpenCV (opencv-python-headless) would replace what the package uses now, measured on one real field.

    python benchmarks/opencv_vs_current.py [--image ../shared/data/mitos12_dev/images/A00_00.jpg] [--repeat 5]

Rows (best of ``--repeat``; ratio = current / OpenCV, > 1 means OpenCV is faster):
- decode a JPEG field: Pillow (``data.images.read_image``) vs ``cv2.imread``;
- resample 0.2456 -> 0.25 um/px: ``inference.resample.resize`` (Keras bilinear,
  antialiased: the SavedModel's own op) vs ``cv2.resize`` INTER_AREA / INTER_LINEAR;
- connected components of a probability map: scikit-image ``label`` +
  ``regionprops`` (``detection.extract_figures`` without outlines) vs
  ``cv2.connectedComponentsWithStats``;
- outlines of the figures: scikit-image ``find_contours`` vs ``cv2.findContours``.
Without ``--image`` a 2084x2084 field of noise stands in.
"""

import argparse
import os
import sys

import numpy as np

# Run as a script: the repository root makes the shared timing helper importable.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from benchmarks.timing import best_of  # noqa: E402


def main():
    import cv2
    from skimage import measure

    from mitoseg_tf.data.images import read_image
    from mitoseg_tf.detection.figures import extract_figures
    from mitoseg_tf.inference.resample import resampled_shape, resize

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default="../shared/data/mitos12_dev/images/A00_00.jpg")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    image = read_image(args.image)
    shape = resampled_shape(image.shape, 0.2456, 0.25)
    # a map with a few hundred blobs, like a nucleus map: smooth noise thresholded
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.random(image.shape[:2]).astype(np.float32), (0, 0), 6)
    probability = (noise - noise.min()) / (noise.max() - noise.min())
    mask = (probability > 0.62).astype(np.uint8)

    def cv_outlines():
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for index in range(1, count):
            x, y, w, h = stats[index, :4]
            crop = (labels[y : y + h, x : x + w] == index).astype(np.uint8)
            cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)

    rows = [
        ("decode JPEG field", lambda: read_image(args.image), lambda: cv2.imread(args.image)[..., ::-1]),
        (
            "resample 0.2456 -> 0.25 um/px (linear)",
            lambda: resize(image, shape),
            lambda: cv2.resize(image, shape[::-1], interpolation=cv2.INTER_LINEAR),
        ),
        (
            "resample 0.2456 -> 0.25 um/px (area)",
            lambda: resize(image, shape),
            lambda: cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA),
        ),
        (
            "components + stats",
            lambda: extract_figures(probability, mpp=0.25, threshold=0.62, min_area_um2=0, outlines=False),
            lambda: cv2.connectedComponentsWithStats(mask, connectivity=8),
        ),
        (
            "components + outlines",
            lambda: extract_figures(probability, mpp=0.25, threshold=0.62, min_area_um2=0),
            cv_outlines,
        ),
    ]
    blobs = measure.label(mask).max()
    print(f"field {image.shape[1]}x{image.shape[0]}, {blobs} blobs in the map; best of {args.repeat}\n")
    print("| step | current (s) | OpenCV (s) | current / OpenCV |")
    print("|---|---:|---:|---:|")
    for name, current, opencv in rows:
        a, b = best_of(args.repeat, current), best_of(args.repeat, opencv)
        print(f"| {name} | {a:.4f} | {b:.4f} | {a / b:.1f} |")


if __name__ == "__main__":
    main()
