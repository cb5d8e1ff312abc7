"""``mitoseg predict``: whole-image prediction, figures, GeoJSON and counts for images or a folder of them.

Per image ``NAME`` it writes into ``--out``: ``NAME_probability.png`` (mitosis
probability x 255), ``NAME_mask.png`` (0 / 255), ``NAME_overlay.png`` (the image
with the kept figures outlined in red), ``NAME.geojson`` (one polygon per
figure, QuPath-ready) and one line of ``counts.csv``.
"""

import argparse
import csv
import os

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
COUNTS_FILE = "counts.csv"
COUNT_COLUMNS = (
    "image", "height", "width", "mpp", "area_mm2", "count", "per_mm2", "per_10hpf",
    "score_threshold", "pixel_threshold",
)  # fmt: skip


def add_parser(subparsers):
    """Register ``predict`` on the ``mitoseg`` subcommand parser."""
    from mitoseg_tf.detection import DEFAULT_HPF10_AREA_MM2, DEFAULT_MIN_AREA_UM2

    p = subparsers.add_parser("predict", help="predict whole images: probability, mask, overlay, GeoJSON, counts")
    p.add_argument("inputs", metavar="IMAGE_OR_FOLDER", help="an image file or a folder of images")
    p.add_argument("--checkpoint", default=None, help="a .keras file, e.g. runs/NAME/best.keras")
    p.add_argument("--weights", default=None, help="weights shipped with the package, MODEL/TAG, e.g. unet/monuseg "
                   "(nuclei); default without --checkpoint: the shipped mitosis weights")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--mpp", type=float, default=0.25, help="microns per pixel of the images (default 0.25)")
    p.add_argument("--tile", type=int, default=512, help="sliding-window tile side (a multiple of the stride)")
    p.add_argument("--overlap", type=float, default=0.25, help="fraction of a tile shared with each neighbour")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average over the 8 flips / rotations (default: as the thresholds were chosen, per detection.json "
        "or the shipped weights' card, else off)",
    )
    p.add_argument(
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rescore the candidate figures with the second-stage figure classifier shipped with the weights, at "
        "its own settings (default: on when the weights ship one, as the mitosis weights do; --no-rescore gives "
        "the network's own figure scores and settings)",
    )
    p.add_argument("--threshold", type=float, default=None, help="pixel probability for the mask (default: run's or 0.5)")
    p.add_argument(
        "--score-threshold", type=float, default=None,
        help="minimum figure score (default: detection.json of the run folder, else 0)",
    )  # fmt: skip
    p.add_argument(
        "--min-area-um2", type=float, default=None,
        help=f"smallest figure kept, square microns (default: the run's or weights' choice, else {DEFAULT_MIN_AREA_UM2:g})",
    )  # fmt: skip
    p.add_argument("--hpf10-area-mm2", type=float, default=DEFAULT_HPF10_AREA_MM2, help="area of 10 HPF (MIDOG: 2)")


def list_images(path):
    """The image files named by ``path`` (a file, or a folder's images sorted by name)."""
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, name) for name in os.listdir(path) if name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path!r}.")
        return files
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} is neither an image file nor a folder.")
    return [path]


def read_rgb(path):
    """An image file as uint8 RGB (H, W, 3); alpha is dropped, grey is repeated."""
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # whole-slide regions are legitimately huge
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as err:  # PIL raises many types for unreadable files
        raise ValueError(f"Cannot read image {path!r}: {type(err).__name__}: {err}") from err


def _overlay(image, figures, shape):
    import numpy as np
    from skimage.draw import polygon_perimeter

    out = image.copy()
    for figure in figures:
        ring = np.asarray(figure.polygon)
        rr, cc = polygon_perimeter(ring[:, 1], ring[:, 0], shape=shape, clip=True)
        out[rr, cc] = (255, 0, 0)
    return out


DEFAULT_TAG = "mitosis"


def _shipped(args):
    """``(model name, tag)`` of the shipped weights to use, or None when a checkpoint is given."""
    from mitoseg_tf.zoo.pretrained import available_weights

    if args.checkpoint and args.weights:
        raise ValueError("give either --checkpoint or --weights, not both.")
    if args.checkpoint:
        return None
    shipped = available_weights()
    if args.weights:
        if args.weights not in shipped:
            raise ValueError(f"--weights {args.weights!r} is not shipped; shipped: {', '.join(sorted(shipped)) or 'none'}.")
        return tuple(args.weights.split("/"))
    default = sorted(k for k in shipped if k.endswith("/" + DEFAULT_TAG))
    if not default:
        raise ValueError(
            "--checkpoint is required: no mitosis weights ship with mitoseg yet (shipped: "
            f"{', '.join(sorted(shipped)) or 'none'}, e.g. --weights unet/monuseg segments nuclei); "
            "or pass a trained .keras file, e.g. --checkpoint runs/NAME/best.keras."
        )
    return tuple(default[0].split("/"))


def _settings(args, shipped):
    from mitoseg_tf.detection import DEFAULT_MIN_AREA_UM2
    from mitoseg_tf.detection.evaluation import load_detection_settings
    from mitoseg_tf.zoo.pretrained import weights_entry

    rescore = bool(args.rescore)
    if shipped:
        entry = weights_entry(*shipped)
        # Detection weights carry the settings chosen on their validation images; others only a pixel threshold.
        saved = entry.get("detection") or {"pixel_threshold": entry.get("threshold", 0.5)}
        rescore = "rescorer" in entry if args.rescore is None else args.rescore
        if rescore and "rescorer" not in entry:
            raise ValueError(f"--rescore: weights {'/'.join(shipped)} ship without a figure classifier; drop --rescore.")
        if rescore:
            # The classifier's settings were chosen on its own scores of candidates from these maps (same TTA).
            saved = {**saved, **entry["rescorer"]["detection"]}
    else:
        if rescore:
            raise ValueError("--rescore needs shipped weights with a figure classifier (the default unet/mitosis); "
                             "a --checkpoint has none.")  # fmt: skip
        saved = load_detection_settings(os.path.dirname(os.path.abspath(args.checkpoint))) or {}
    score_threshold = args.score_threshold if args.score_threshold is not None else saved.get("score_threshold", 0.0)
    pixel_threshold = args.threshold if args.threshold is not None else saved.get("pixel_threshold", 0.5)
    min_area = args.min_area_um2 if args.min_area_um2 is not None else saved.get("min_area_um2", DEFAULT_MIN_AREA_UM2)
    source = (
        "command line" if args.score_threshold is not None
        else "figure classifier's card" if rescore else "shipped weights' card" if shipped
        else "detection.json" if saved else "default"
    )  # fmt: skip
    # Thresholds chosen on averaged maps only hold for averaged maps, so TTA follows the settings unless told.
    tta = args.tta if args.tta is not None else bool(saved.get("tta", False))
    return float(score_threshold), float(pixel_threshold), float(min_area), tta, source, rescore


def run(args):
    """Predict every image and write the per-image files and ``counts.csv``."""
    import numpy as np
    from PIL import Image

    from mitoseg_tf.detection import (
        count_density,
        extract_figures,
        image_area_mm2,
        write_geojson,
    )
    from mitoseg_tf.detection.rescoring import rescore_figures
    from mitoseg_tf.inference import predict_image
    from mitoseg_tf.training.checkpoint import load_checkpoint
    from mitoseg_tf.zoo.pretrained import load_rescorer

    shipped = _shipped(args)
    score_threshold, pixel_threshold, min_area, tta, source, rescore = _settings(args, shipped)
    if args.mpp <= 0:
        raise ValueError(f"--mpp must be positive microns per pixel; got {args.mpp}.")
    files = list_images(args.inputs)
    if shipped:
        from mitoseg_tf.zoo import build

        model = build(shipped[0], weights=shipped[1], input_shape=(None, None, 3))
        classifier = load_rescorer(*shipped) if rescore else None
    else:
        model = load_checkpoint(args.checkpoint)
    os.makedirs(args.out, exist_ok=True)
    print(
        f"{len(files)} image(s); figure score threshold {score_threshold:.4g} ({source}), pixel threshold "
        f"{pixel_threshold}, smallest figure {min_area:g} um^2{', 8-fold test-time augmentation' if tta else ''}"
        f"{', candidates rescored by the figure classifier' if rescore else ''}"
    )
    rows = []
    for path in files:
        image = read_rgb(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        probability = predict_image(
            model, image, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, tta=tta
        )
        figures = extract_figures(probability, mpp=args.mpp, threshold=pixel_threshold, min_area_um2=min_area)
        if rescore:
            figures = rescore_figures(classifier, image, figures)
        figures = [f for f in figures if f.score >= score_threshold]
        mask = probability > pixel_threshold
        base = os.path.join(args.out, stem)
        Image.fromarray(np.round(probability * 255).astype(np.uint8)).save(base + "_probability.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(base + "_mask.png")
        Image.fromarray(_overlay(image, figures, probability.shape)).save(base + "_overlay.png")
        write_geojson(figures, base + ".geojson")
        density = count_density(
            len(figures), image_area_mm2(*probability.shape, args.mpp), hpf10_area_mm2=args.hpf10_area_mm2
        )
        rows.append(
            {
                "image": os.path.basename(path),
                "height": probability.shape[0],
                "width": probability.shape[1],
                "mpp": args.mpp,
                "area_mm2": f"{density['area_mm2']:.6g}",
                "count": density["count"],
                "per_mm2": f"{density['per_mm2']:.6g}",
                "per_10hpf": f"{density['per_10hpf']:.6g}",
                "score_threshold": f"{score_threshold:.6g}",
                "pixel_threshold": pixel_threshold,
            }
        )
        print(f"{rows[-1]['image']}: {density['count']} figure(s), {density['per_mm2']:.3g} per mm^2")
    with open(os.path.join(args.out, COUNTS_FILE), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COUNT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows
