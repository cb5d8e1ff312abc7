"""``mitoseg slide``: whole-slide inference: figures, tissue, hotspot, counts and files for a slide or a folder.

Parses the options, builds a ``mitoseg_tf.detector.Detector`` and calls
``mitoseg_tf.slides.predict_slides``; see ``mitoseg_tf.slides.outputs`` for the files written.
"""

import argparse

from mitoseg_tf import defaults
from mitoseg_tf.cli.predict import add_detector_options, check_window_options, detector_options

# Passed to predict_slides only when given: the high-power field is one of two options (area or diameter) and
# the hotspot's size follows from it, so None here lets the library work out the rest.
LIBRARY_DEFAULTS = ("hpf10_area_mm2", "field_diameter_mm", "hotspot_fields", "hotspot_min_tissue")


def add_parser(subparsers):
    """Register ``slide`` on the ``mitoseg`` subcommand parser."""
    p = subparsers.add_parser(
        "slide",
        help="whole-slide images: every figure, tissue area, hotspot, counts, GeoJSON and pictures",
    )
    p.add_argument(
        "inputs",
        metavar="SLIDE_OR_FOLDER",
        help="a slide (SVS, NDPI, MRXS, tiled TIFF, ... or a plain image with --mpp) or a folder of them",
    )
    p.add_argument("--out", required=True, help="output folder (created): per-slide files and summary.csv")
    add_detector_options(p)
    p.add_argument(
        "--mpp",
        type=float,
        default=None,
        help="microns per level-0 pixel; overrides the slide's metadata "
        "and is required for plain images (default: from the metadata)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the state file in --out (same figures as one uninterrupted run)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=defaults.DEFAULT_SLIDE_TILE,
        help="side of a tile's core, pixels at the detector's resolution (memory and speed, not results)",
    )
    p.add_argument(
        "--margin",
        type=int,
        default=defaults.DEFAULT_SLIDE_MARGIN,
        help="context read around each core, pixels at the detector's resolution",
    )
    field = p.add_mutually_exclusive_group()
    field.add_argument(
        "--hpf10-area-mm2",
        type=float,
        default=None,
        help="area of 10 high-power fields: the hotspot "
        "window, per-10-HPF densities and Nottingham cut-offs all use it (default: MIDOG's "
        f"{defaults.DEFAULT_HPF10_AREA_MM2:g} mm^2)",
    )
    field.add_argument(
        "--field-diameter-mm",
        type=float,
        default=None,
        help="or the microscope's field diameter instead: 10 such fields are the 10-HPF area",
    )
    p.add_argument(
        "--hotspot-fields",
        type=float,
        default=None,
        help="hotspot window as this many high-power fields (default: 10, the 10-HPF area)",
    )
    p.add_argument(
        "--hotspot-shape",
        choices=("square", "circle"),
        default=defaults.DEFAULT_HOTSPOT_SHAPE,
        help="the hotspot window: a square, or a circle (a microscope's field of view) of the same area",
    )
    p.add_argument(
        "--hotspot-min-tissue",
        type=float,
        default=None,
        help="least fraction of a hotspot window that "
        "must be tissue; the density is per tissue area inside (default: "
        f"{defaults.DEFAULT_HOTSPOT_MIN_TISSUE:g})",
    )
    p.add_argument(
        "--hotspots",
        type=int,
        default=defaults.DEFAULT_HOTSPOTS,
        help="number of non-overlapping hotspot windows to report",
    )
    p.add_argument(
        "--tissue-mpp", type=float, default=defaults.DEFAULT_TISSUE_MPP, help="microns per pixel of the tissue mask"
    )
    p.add_argument(
        "--prefetch",
        type=int,
        default=defaults.DEFAULT_SLIDE_PREFETCH,
        help="tiles read ahead on a background thread (memory bound)",
    )
    p.add_argument(
        "--state-every-s",
        type=float,
        default=defaults.DEFAULT_STATE_EVERY_S,
        help="seconds between writes of the resume state (what a kill can cost)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress bar over tiles, shown only when stderr is a terminal",
    )


def _print_row(row):
    if row["status"] != "ok":
        print(f"{row['slide']}: {row['status']}")
        return
    noun = "nuclei" if row["object_class"] == "Nucleus" else "mitoses"
    text = f"{row['slide']}: {row['count']} {noun} in {row['tissue_area_mm2'] or 0} mm^2 of tissue"
    if row["per_mm2"]:
        text += f", {float(row['per_mm2']):.3g} per mm^2"
    if row["hotspot_count"] != "":
        text += f"; hotspot {row['hotspot_count']} ({float(row['hotspot_per_10hpf']):.3g} per 10 HPF"
        text += f", Nottingham {row['nottingham']})" if row["nottingham"] != "" else ")"
    print(f"{text} [{float(row['seconds']):.0f} s]")


def run(args):
    """Predict every slide; exit status 1 when some slide failed (the others finish)."""
    from mitoseg_tf.detector import Detector
    from mitoseg_tf.detector.files import check_out_dir
    from mitoseg_tf.slides import predict_slides
    from mitoseg_tf.slides.predict import list_slides

    check_window_options(args)  # before the network loads
    check_out_dir(args.out, list_slides(args.inputs))
    # --tile here is the slide tile; the detector's own sliding window keeps its default.
    detector = Detector.load(**{**detector_options(args), "tile": None})
    print(detector.describe())
    given = {name: getattr(args, name) for name in LIBRARY_DEFAULTS if getattr(args, name) is not None}
    result = predict_slides(
        detector,
        args.inputs,
        out_dir=args.out,
        on_slide=_print_row,
        mpp=args.mpp,
        resume=args.resume,
        tile=args.tile,
        margin=args.margin,
        hotspot_shape=args.hotspot_shape,
        hotspots=args.hotspots,
        tissue_mpp=args.tissue_mpp,
        prefetch=args.prefetch,
        progress=args.progress,
        state_every_s=args.state_every_s,
        **given,
    )
    failed = result.failures
    print(f"{len(result.rows) - len(failed)} slide(s) done, {len(failed)} failed; summary in {result.summary_path}")
    return 1 if failed else 0
