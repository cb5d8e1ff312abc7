"""Second stage of a detector: a window classifier's probability becomes each candidate figure's score.

The segmentation network proposes candidates (blobs of its map, usually at a
low pixel threshold so that pale figures are among them); a classifier built
by ``mitoseg_tf.models.build_figure_classifier`` looks at a window centred on
each and its probability replaces the blob's mean probability. The size floor
and the score threshold are then chosen on these scores as for any other
(``choose_settings``).

Backend-neutral NumPy + Keras: no TensorFlow needed.

Example:
    >>> figures = extract_figures(probability, mpp=0.25, threshold=0.2, min_area_um2=30)
    >>> kept = [f for f in rescore_figures(classifier, image, figures) if f.score >= 0.9]
"""

import dataclasses

import numpy as np

from mitoseg_tf.inference import tta as dihedral
from mitoseg_tf.inference.tiling import reflect_indices


def cut_windows(image, centres, size):
    """``(K, size, size, C)`` windows of ``image`` (H, W, C) centred on each (row, col), mirrored past the border.

    A window's centre pixel is the centre rounded to the nearest pixel; even
    sizes put it just below and right of the middle, as ``size // 2``.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"cut_windows takes one (height, width, channels) image; got shape {image.shape}.")
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    offsets = np.arange(size) - size // 2
    out = np.empty((len(centres), size, size, image.shape[-1]), image.dtype)
    for i, (row, col) in enumerate(np.round(centres).astype(int)):
        rows = reflect_indices(row + offsets, image.shape[0])
        cols = reflect_indices(col + offsets, image.shape[1])
        out[i] = image[rows[:, None], cols[None, :]]
    return out


def classify_centres(classifier, image, centres, *, tta=True, batch_size=256):
    """Classifier probability (K,) of a figure at each (row, col) centre of ``image`` (RGB, 0-255).

    ``tta`` averages the 8 flips and quarter turns of every window, as the
    shipped settings were chosen with.
    """
    import keras  # start-up: detection imports without Keras; whoever holds a classifier has loaded it already

    window = classifier.input_shape[1]
    windows = cut_windows(np.asarray(image)[..., :3], centres, window).astype(np.float32)
    if not len(windows):
        return np.zeros(0, np.float32)
    # All views in one stack: a field's few dozen windows x 8 are one or two calls, not 8 small ones
    # (0.63x the time for 25 candidates, 0.9x for 100; see benchmarks/README.md).
    count = dihedral.NUM_TRANSFORMS if tta else 1
    views = np.concatenate([dihedral.forward(windows, k) for k in range(count)])
    scores = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                classifier(np.ascontiguousarray(views[start : start + batch_size]), training=False)
            )[:, 0]
            for start in range(0, len(views), batch_size)
        ]
    )
    return scores.reshape(count, len(windows)).mean(axis=0, dtype=np.float64).astype(np.float32)


def rescore_figures(classifier, image, figures, *, tta=True, batch_size=256):
    """``figures`` with ``score`` replaced by the classifier's probability at each centroid, highest first."""
    scores = classify_centres(classifier, image, [f.centroid for f in figures], tta=tta, batch_size=batch_size)
    rescored = [dataclasses.replace(f, score=float(s)) for f, s in zip(figures, scores)]
    return sorted(rescored, key=lambda f: -f.score)
