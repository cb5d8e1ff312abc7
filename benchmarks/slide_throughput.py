"""Whole-slide throughput: megapixels of tissue per second, peak memory and where the time goes.

Writes synthetic pyramidal slides (glass with a few round tissue patches and
dark figures; JPEG tiles, Aperio-style description at 0.25 um/px) of each
``--sizes`` side, then runs ``predict_slide`` with the shipped U-Net
(``unet/mitosis``, no second stage, or ``--base-filters``) plain and 8-fold averaged, each in its
own process so peak RSS belongs to that run alone. Prints a markdown table.

    python benchmarks/slide_throughput.py                       # 8k and 16k squares, ~6 min on 2 cores
    python benchmarks/slide_throughput.py --sizes 20000 40000   # longer
    python benchmarks/slide_throughput.py --base-filters 8      # untrained narrow U-Net: the pipeline's overhead
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import tifffile

MPP = 0.25
TILE = 512


def patches(side, fraction, seed=0):
    """(cx, cy, r) discs covering about ``fraction`` of a ``side`` square."""
    rng = np.random.default_rng(seed)
    count = 4
    radius = side * np.sqrt(fraction / (count * np.pi))
    centres = rng.uniform(radius * 1.2, side - radius * 1.2, size=(count, 2))
    return [(float(x), float(y), float(radius)) for x, y in centres]


def render(x0, y0, w, h, ds, discs, blobs):
    """RGB of the level-0 box at (x0, y0) of w x h pixels of a level ``ds`` times coarser."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = x0 + (xs + 0.5) * ds, y0 + (ys + 0.5) * ds
    out = np.full((h, w, 3), 245, np.uint8)
    tissue = np.zeros((h, w), bool)
    for cx, cy, r in discs:
        tissue |= (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    if tissue.any():
        rng = np.random.default_rng(int(x0 * 7 + y0 * 13 + ds))
        out[tissue] = (np.array([214, 150, 190]) + rng.integers(-25, 25, size=(int(tissue.sum()), 3))).clip(0, 255)
        near = blobs[
            (np.abs(blobs[:, 0] - (x0 + w * ds / 2)) < w * ds) & (np.abs(blobs[:, 1] - (y0 + h * ds / 2)) < h * ds)
        ]
        for bx, by in near:
            out[((xs - bx) ** 2 + (ys - by) ** 2 <= 81) & tissue] = (60, 25, 95)
    return out


def write_slide(path, side, fraction):
    discs = patches(side, fraction)
    rng = np.random.default_rng(1)
    blobs = np.concatenate(
        [np.array([cx, cy]) + rng.uniform(-r, r, size=(int(r * r * 2e-5) + 5, 2)) for cx, cy, r in discs]
    )
    description = f"Aperio Image Library v12.0.0\n{side}x{side} [0,0 {side}x{side}] (512x512) JPEG/RGB Q=90|MPP = {MPP}"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, ds in enumerate((1, 4, 16)):
            size = side // ds

            def tiles(ds=ds, size=size):
                for y in range(0, size, TILE):
                    for x in range(0, size, TILE):
                        h, w = min(TILE, size - y), min(TILE, size - x)
                        tile = np.full((TILE, TILE, 3), 245, np.uint8)
                        tile[:h, :w] = render(x * ds, y * ds, w, h, ds, discs, blobs)
                        yield tile

            tif.write(
                tiles(),
                shape=(size, size, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                photometric="rgb",
                description=description if i == 0 else None,
                subfiletype=0 if i == 0 else 1,
                metadata=None,
            )
    return len(blobs)


def child(args):
    """One run in this process: prints one JSON line."""
    from mitoseg_tf.detector import DetectionSettings, Detector

    if args.base_filters:
        from mitoseg_tf.zoo import build

        # Untrained: a high pixel threshold keeps its noise from becoming thousands of figures to trace.
        model = build("unet", base_filters=args.base_filters, input_shape=(None, None, 3))
        detector = Detector(model, mpp=MPP, settings=DetectionSettings(pixel_threshold=0.9, tta=args.tta))
    else:
        detector = Detector.from_weights("unet/mitosis", rescore=False, tta=args.tta)
    start = time.perf_counter()
    result = detector.predict_slide(args.slide, out_dir=args.out, progress=False)
    seconds = time.perf_counter() - start
    tissue_mpx = result.tissue_area_mm2 * 1e6 / detector.mpp**2 / 1e6
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tissue_mm2": result.tissue_area_mm2,
                "tissue_mpx": tissue_mpx,
                "count": result.count,
                "tiles": result.tiles,
                "timing": result.timing,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[8000, 16000], help="slide sides in pixels")
    p.add_argument("--tissue-fraction", type=float, default=0.03, help="share of the slide covered by tissue")
    p.add_argument("--no-tta", action="store_true", help="skip the 8-fold averaged runs")
    p.add_argument(
        "--base-filters",
        type=int,
        default=None,
        help="an untrained zoo U-Net of this width instead of "
        "the shipped unet/mitosis (f = 64): the pipeline's own cost on a slow machine",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--slide", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--tta", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for side in args.sizes:
            path = os.path.join(folder, f"synthetic_{side}.svs")
            t0 = time.perf_counter()
            figures = write_slide(path, side, args.tissue_fraction)
            print(
                f"wrote {side}x{side} slide ({os.path.getsize(path) / 1e6:.0f} MB, {figures} figures) in "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
            )
            for tta in (False,) if args.no_tta else (False, True):
                command = [sys.executable, __file__, "--child", "--slide", path, "--out", os.path.join(folder, "out")]
                command += ["--base-filters", str(args.base_filters)] if args.base_filters else []
                out = subprocess.run(command + (["--tta"] if tta else []), capture_output=True, text=True, check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((side, tta, run))
                print(json.dumps(run), file=sys.stderr)
    print(
        "| slide | map | tissue mm^2 (Mpx) | tiles run / all | seconds | tissue Mpx/s | read+resample s (thread) "
        "| waiting for reads s | network s | stitch s | tissue mask s | peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for side, tta, run in rows:
        t = run["timing"]
        print(
            f"| {side}x{side} | {'8-fold' if tta else 'plain'} | {run['tissue_mm2']:.2f} ({run['tissue_mpx']:.1f}) | "
            f"{run['tiles']['run']} / {run['tiles']['total']} | {run['seconds']:.1f} | "
            f"{run['tissue_mpx'] / run['seconds']:.3f} | {t['read_s']:.1f} | {t['wait_s']:.1f} | {t['network_s']:.1f} | "
            f"{t['stitch_s']:.2f} | {t['tissue_s']:.1f} | {run['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
