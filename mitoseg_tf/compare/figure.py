"""A figure like the paper's Figure 5: image, ground truth and every model's prediction on the same tiles."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mitoseg_tf.compare.selection import display_name

FIGURE_FILE = "figure_tiles.npz"


def pick_tiles(source, count):
    """``(indices, images, masks)`` of the first ``count`` examples with a mitosis (then any), same for every model."""
    images, masks, indices, fallback = [], [], [], []
    examples = source.as_numpy_iterator() if hasattr(source, "as_numpy_iterator") else iter(source)
    for index, example in enumerate(examples):
        mask = np.asarray(example["mask"])
        if mask.any() and len(indices) < count:
            indices.append(index)
            images.append(np.asarray(example["image"]))
            masks.append(mask)
        elif len(fallback) < count:
            fallback.append((index, np.asarray(example["image"]), mask))
        if len(indices) >= count:
            break
    for index, image, mask in fallback[: count - len(indices)]:
        indices.append(index)
        images.append(image)
        masks.append(mask)
    return indices, images, masks


def plot_comparison(images, masks, predictions, out_path, *, threshold=0.5):
    """Rows = tiles; columns = image, ground truth, then each model's binary prediction (``predictions[name]``)."""
    names = list(predictions)
    rows, cols = len(images), 2 + len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows), squeeze=False)
    for r in range(rows):
        panels = [(images[r], "image"), (masks[r], "ground truth")]
        panels += [(predictions[n][r] > threshold, display_name(n)) for n in names]
        for c, (panel, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap=None if panel.ndim == 3 else "gray", vmin=0, vmax=1 if panel.ndim == 2 else None)
            if r == 0:
                ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
