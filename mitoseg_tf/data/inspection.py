"""What is in a dataset: counts per split, figures per image, class balance, a sample grid."""

import numpy as np

from mitoseg_tf.data import formats
from mitoseg_tf.data.splits import SPLITS, split_records
from mitoseg_tf.defaults import DEFAULT_INSPECT_MAX_IMAGES


def summarise(name, data_dir, *, max_images=DEFAULT_INSPECT_MAX_IMAGES, radius_um=None, refine=False, **reader_options):
    """Counts from the annotations, pixel statistics from up to ``max_images`` decoded images.

    Returns a dict: images and slides per split, labelled objects per image
    (mean, min, max), hard negatives, microns per pixel, image sizes and the
    share of mask pixels (class balance) over the decoded images.
    """
    from mitoseg_tf.data.points import DEFAULT_RADIUS_UM

    records = formats.read_records(name, data_dir, **reader_options)
    splits = split_records(records)
    decoded = [
        formats.load_example(r, radius_um=radius_um or DEFAULT_RADIUS_UM, refine=refine)
        for r in records[: max(max_images, 0)]
    ]
    # Mask-only records (folder, MoNuSeg PNGs) have their points once decoded.
    counts = (
        [len(d["points"]) for d in decoded]
        if any(r.mask is not None for r in records)
        else [len(r.points) for r in records]
    )
    mask_pixels = sum(int(d["mask"].sum()) for d in decoded)
    all_pixels = sum(d["mask"].size for d in decoded)
    sizes = sorted({d["image"].shape[:2] for d in decoded})
    return {
        "dataset": name,
        "images": len(records),
        "splits": {s: {"images": len(splits[s]), "slides": len({r.slide for r in splits[s]})} for s in SPLITS},
        "objects_per_image": {
            "counted_on": len(counts),
            "total": int(np.sum(counts)),
            "mean": float(np.mean(counts)) if counts else 0.0,
            "min": int(np.min(counts)) if counts else 0,
            "max": int(np.max(counts)) if counts else 0,
        },
        "hard_negatives": int(sum(len(r.negatives) for r in records)),
        "mpp": sorted({round(float(r.mpp), 4) for r in records}),
        "image_sizes": [f"{h}x{w}" for h, w in sizes[:5]],
        "decoded_images": len(decoded),
        "foreground_fraction": mask_pixels / all_pixels if all_pixels else 0.0,
    }


def format_summary(summary):
    s = summary
    lines = [
        f"Dataset {s['dataset']}: {s['images']} images, microns per pixel {s['mpp']}",
        "split        images  slides",
    ]
    lines += [f"{name:<12} {v['images']:>6}  {v['slides']:>6}" for name, v in s["splits"].items()]
    o = s["objects_per_image"]
    lines += [
        f"labelled objects: {o['total']} over {o['counted_on']} images "
        f"(per image mean {o['mean']:.2f}, min {o['min']}, max {o['max']})",
        f"hard negatives: {s['hard_negatives']}",
        f"image sizes (first decoded): {', '.join(s['image_sizes'])}",
        f"class balance over {s['decoded_images']} decoded images: "
        f"{100 * s['foreground_fraction']:.3f} % foreground pixels",
    ]
    return "\n".join(lines)


def sample_grid(name, data_dir, out_path, *, count=8, radius_um=None, refine=False, seed=0, **reader_options):
    """A PNG of ``count`` images with the mask outlined (green) and the points marked (red crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mitoseg_tf.data.points import DEFAULT_RADIUS_UM

    records = formats.read_records(name, data_dir, **reader_options)
    # Prefer images with labelled objects: they show whether masks and points line up.
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    chosen = sorted(order[:count], key=lambda i: -len(records[i].points))
    cols = min(4, len(chosen))
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), chosen):
        ex = formats.load_example(records[i], radius_um=radius_um or DEFAULT_RADIUS_UM, refine=refine)
        ax.imshow(ex["image"])
        if ex["mask"].any():
            ax.contour(ex["mask"], levels=[0.5], colors="lime", linewidths=0.8)
        if len(ex["points"]):
            ax.plot(ex["points"][:, 1], ex["points"][:, 0], "r+", markersize=8)
        if len(ex["negatives"]):
            ax.plot(ex["negatives"][:, 1], ex["negatives"][:, 0], "bx", markersize=5)
        ax.set_title(f"{ex['id']} ({len(ex['points'])})", fontsize=8)
    fig.suptitle(f"{name}: mask outline green, figures red +, hard negatives blue x", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
