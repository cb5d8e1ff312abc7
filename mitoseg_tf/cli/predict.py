"""``mitoseg predict``: figures, counts, GeoJSON and readable pictures for an image or a folder of images.

Parses the options, builds a ``mitoseg_tf.detector.Detector`` and calls
``mitoseg_tf.detector.files.predict_files``; see that module for the files written.
The pixel size is ``--mpp`` or what each file states (``mitoseg_tf.data.pixel_size``);
there is no default.
"""

import argparse

from mitoseg_tf import defaults

MIN_TILE = 16  # the shipped networks' stride: a smaller window holds no whole feature map


def add_parser(subparsers):
    """Register ``predict`` on the ``mitoseg`` subcommand parser."""
    # mitoseg's own formatter (cli/main.py): each default shown, except None's, which the help texts explain.
    p = subparsers.add_parser(
        "predict", help="predict whole images: figures, counts, GeoJSON, overlay, overview and gallery"
    )
    p.add_argument("inputs", metavar="IMAGE_OR_FOLDER", help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (created): per-image files and counts.csv")
    add_detector_options(p)
    p.add_argument(
        "--mpp",
        type=float,
        default=None,
        help="microns per pixel of every image (0.25 at 40x, 0.5 at 20x; "
        "accepted 0.05-10); default: what each file states (TIFF resolution tags or Aperio/OME description, "
        "PNG pHYs, JPEG JFIF density), else an error. Images are resampled to the detector's resolution "
        "and the results mapped back",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=defaults.DEFAULT_WINDOW_TILE,
        help="sliding-window tile side (a multiple of the network stride)",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=defaults.DEFAULT_WINDOW_OVERLAP,
        help="fraction of a tile shared with each neighbour",
    )
    p.add_argument(
        "--hpf10-area-mm2",
        type=float,
        default=defaults.DEFAULT_HPF10_AREA_MM2,
        help="area of 10 high-power fields for per-10-HPF counts (MIDOG: 2 mm^2)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar over images (default: when stderr is a terminal)",
    )


def add_detector_options(p):
    """The options that choose a detector and its settings, shared by predict and slide."""
    p.add_argument(
        "--checkpoint",
        default=None,
        help="a .keras file, e.g. runs/NAME/best.keras (settings from its run folder's detection.json)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="weights shipped with the package, MODEL/TAG (see `mitoseg "
        "weights`), e.g. unet/monuseg for nuclei; without --checkpoint: unet/mitosis",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=defaults.DEFAULT_WINDOW_BATCH_SIZE,
        help="network windows per forward pass (memory, not results)",
    )
    p.add_argument(
        "--runtime",
        choices=defaults.RUNTIMES,
        default=defaults.DEFAULT_RUNTIME,
        help="what runs the network: onnxruntime is an optional install (pip install 'mitoseg-tf[onnx]'), "
        "xla needs none; speed, not results "
        "(benchmarks/slide_runtimes.py compares them)",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the map over the 8 flips / quarter turns (default: as the settings were chosen)",
    )
    p.add_argument(
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rescore candidates with the figure classifier shipped with the weights (default: when one "
        "ships; --no-rescore: the network's own figure scores and settings)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="pixel probability above which pixels form candidate figures (default: the card's or run's)",
    )
    p.add_argument(
        "--score-threshold", type=float, default=None, help="smallest figure score kept (default: the card's or run's)"
    )
    p.add_argument(
        "--min-area-um2",
        type=float,
        default=None,
        help="smallest figure kept, square microns (default: the card's or run's)",
    )


def detector_options(args):
    """The ``Detector.load`` keywords of the options shared by predict, export and slide."""
    return {
        "checkpoint": args.checkpoint,
        "weights": args.weights,
        "rescore": getattr(args, "rescore", None),
        "tta": args.tta,
        "pixel_threshold": args.threshold,
        "score_threshold": getattr(args, "score_threshold", None),
        "min_area_um2": getattr(args, "min_area_um2", None),
        "tile": getattr(args, "tile", None),
        "overlap": getattr(args, "overlap", None),
        "batch_size": getattr(args, "batch_size", None),
        "runtime": getattr(args, "runtime", None),
    }


def check_window_options(args):
    """The sliding window and density options a command has (predict, slide, export, evaluate), before any network loads."""
    import math

    def given(name):
        return getattr(args, name, None) is not None

    if given("tile") and args.tile < MIN_TILE:
        raise ValueError(f"--tile must be at least {MIN_TILE} pixels; got {args.tile}.")
    if given("overlap") and not 0 <= args.overlap < 1:
        raise ValueError(f"--overlap is a fraction of a tile in [0, 1); got {args.overlap}.")
    if given("batch_size") and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1; got {args.batch_size}.")
    for name in ("hpf10_area_mm2", "match_distance_um"):
        if given(name) and not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0; got {getattr(args, name)}.")


def _print_row(row):
    if row["status"] != "ok":
        print(f"{row['image']}: {row['status']}")
        return
    noun = "nuclei" if row["object_class"] == "Nucleus" else "mitoses"
    per_10hpf = f", {float(row['per_10hpf']):.3g} per 10 HPF" if row["per_10hpf"] else ""
    at = f"{float(row['mpp']):g} um/px ({row['mpp_source']})"
    print(f"{row['image']}: {row['count']} {noun}, {float(row['per_mm2']):.3g} per mm^2{per_10hpf}; at {at}")


def run(args):
    """Predict every image; exit status 1 when some image failed (the others finish; counts.csv lists all)."""
    from mitoseg_tf.data.pixel_size import image_pixel_sizes
    from mitoseg_tf.detector import Detector
    from mitoseg_tf.detector.files import check_out_dir, list_image_files, output_stems, predict_files

    # Cheap checks first: a wrong folder, output folder or pixel size should not wait for a network to load.
    check_window_options(args)
    files = list_image_files(args.inputs)
    check_out_dir(args.out, files)
    output_stems(files)
    image_pixel_sizes(files, args.mpp, given_by="--mpp")
    detector = Detector.load(**detector_options(args))
    print(detector.describe())
    result = predict_files(
        detector,
        files,
        mpp=args.mpp,
        mpp_given_by="--mpp",
        out_dir=args.out,
        hpf10_area_mm2=args.hpf10_area_mm2,
        progress=args.progress,
        on_image=_print_row,
    )
    failed = result.failures
    print(f"{len(result.rows) - len(failed)} image(s) predicted, {len(failed)} failed; counts in {result.counts_path}")
    return 1 if failed else 0
