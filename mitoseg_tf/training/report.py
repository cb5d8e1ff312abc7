"""Run-folder figures: training curves and image / ground truth / prediction overlays."""

import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from mitoseg_tf.detection.matching import match_points  # noqa: E402
from mitoseg_tf.training.callbacks import read_epoch_log  # noqa: E402


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def plot_training_curves(batch_log, epoch_log, out_path, monitor=None):
    """Per-batch loss (light) with its per-epoch mean, and validation metrics per epoch."""
    batches = _read_csv(batch_log)
    epochs = read_epoch_log(epoch_log)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if batches:
        steps = np.arange(len(batches))
        loss = np.array([float(r["loss"]) for r in batches])
        ax_loss.plot(steps, loss, color="tab:blue", alpha=0.3, lw=0.8, label="batch loss")
        per_epoch = len(batches) / max(len(epochs), 1)
        ax_loss.plot(
            (np.arange(len(epochs)) + 1) * per_epoch,
            [float(r["loss"]) for r in epochs],
            "o-",
            color="tab:blue",
            label="epoch mean",
        )
        if epochs and "val_loss" in epochs[0]:
            ax_loss.plot(
                (np.arange(len(epochs)) + 1) * per_epoch,
                [float(r["val_loss"]) for r in epochs],
                "s-",
                color="tab:orange",
                label="validation",
            )
    ax_loss.set(xlabel="batch", ylabel="loss", title="Loss")
    ax_loss.legend()
    for key in sorted(epochs[0] if epochs else []):
        if key.startswith("val_") and key != "val_loss" and not key.endswith("_loss"):
            ax_metric.plot(np.arange(1, len(epochs) + 1), [float(r[key]) for r in epochs], "o-", label=key)
    if monitor:
        ax_metric.set_title(f"Validation metrics (checkpoint on {monitor})")
    ax_metric.set(xlabel="epoch", ylim=(0, 1))
    if ax_metric.lines:
        ax_metric.legend(fontsize=8)
    else:  # a one-epoch run: fit had nothing to choose, so it did not validate (metrics.md scores the weights)
        ax_metric.set_title("No validation during training: see metrics.md")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def _outline(image, mask, colour):
    out = image.copy()
    out[find_boundaries(mask.astype(bool), mode="outer")] = colour
    return out


def plot_overlays(images, masks, predictions, out_path, title=None):
    """One row per tile: image, ground truth outline (green), prediction outline (red)."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for row in range(n):
        image = np.clip(np.asarray(images[row]), 0, 255).astype(np.uint8)
        truth, pred = np.asarray(masks[row]).squeeze(), np.asarray(predictions[row]).squeeze()
        panels = (
            (image, "image"),
            (_outline(image, truth, (0, 255, 0)), f"ground truth ({int(truth.sum())} px)"),
            (_outline(image, pred, (255, 0, 0)), f"prediction ({int(pred.sum())} px)"),
        )
        for col, (panel, label) in enumerate(panels):
            axes[row, col].imshow(panel)
            axes[row, col].set_title(label, fontsize=9)
            axes[row, col].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)


def plot_detections(fields, out_path, title=None, max_side=700):
    """Whole fields with their matched detections: green true positives, red false positives, yellow misses.

    ``fields``: ``(name, image, true centres (K, 2), predicted centres (N, 2),
    match distance in px)`` per image; matching is ``detection.match_points``
    (one-to-one), so the marks add up to the reported TP / FP / FN.
    """
    fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 4.6), squeeze=False)
    for ax, (name, image, truth, predicted, distance) in zip(axes[0], fields):
        truth, predicted = np.asarray(truth).reshape(-1, 2), np.asarray(predicted).reshape(-1, 2)
        pairs, missed_pred, missed_truth = match_points(predicted, truth, distance)
        step = max(1, int(np.ceil(max(image.shape[:2]) / max_side)))
        ax.imshow(image[::step, ::step])
        marks = [
            (predicted[[p for p, _ in pairs]], "lime", "o", f"TP {len(pairs)}"),
            (predicted[missed_pred], "red", "x", f"FP {len(missed_pred)}"),
            (truth[missed_truth], "yellow", "s", f"FN {len(missed_truth)}"),
        ]
        for points, colour, marker, label in marks:
            points = points.reshape(-1, 2) / step
            ax.scatter(
                points[:, 1],
                points[:, 0],
                s=90,
                facecolors="none" if marker != "x" else colour,
                edgecolors=colour,
                marker=marker,
                linewidths=2,
                label=label,
            )
        ax.set_title(name)
        ax.legend(loc="lower right", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path
