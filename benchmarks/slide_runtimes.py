"""The shipped detector's slide window on each CPU runtime, and on each tiling: speed, map agreement, figures.

One slide window (``--window`` pixels at the detector's 0.25 um/px: by default
the 1024-px core plus its two 128-px margins that ``mitoseg slide`` feeds the
detector) is cut from a real field (MITOS-2012 ``A01_04``, top right: five
annotated mitoses) or, without the data, from noise. On it:

1. ``runtimes``: the shipped ``unet/mitosis`` U-Net (float32, single view, at
   the detector's own tiling) through TensorFlow's ``predict_on_batch``, XLA,
   ONNX Runtime (``mitoseg_tf.inference.runtimes``) and OpenVINO (here only:
   slower than TensorFlow on the 2-core AVX2 machine, so not adopted), the same
   tiles, blending and figure extraction for all. Each variant runs once to
   warm up (conversion, compilation), then the variants take turns
   (A B C D A B C D, ``--repeat`` rounds) and the best of each is kept: the
   machine is shared, so read the ratio to TensorFlow, not the seconds.
   Agreement: the largest absolute difference of the probability map from
   TensorFlow's, and whether the kept figures (centroid, area, score) are the
   same.
2. ``tiling``: tile side, overlap and tiles per batch of the detector's
   sliding window inside the slide window, on ``--tiling-runtime``; figures
   compared with the shipped tiling (512 px, 0.25, batch 4) on that runtime.
3. ``split``: where the rest of a window's time goes: the blending alone (a
   network that returns zeros) and the figure extraction from a finished map.

8-fold averaging multiplies the network's time by 8 on every runtime alike.
Prints tables and writes ``--out`` (JSON, with the machine: CPU flags, cores,
load, package versions); parts run in separate invocations add to the same file.

    nice -n 5 python benchmarks/slide_runtimes.py                    # ~5 min on a busy 2-core machine
    nice -n 5 python benchmarks/slide_runtimes.py --parts runtimes --runtimes tensorflow onnxruntime --repeat 3
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.timing import best_of  # noqa: E402
from mitoseg_tf.inference.runtimes import RUNTIMES  # noqa: E402
from mitoseg_tf.inference.runtimes import missing as missing_in_library  # noqa: E402

DEFAULT_IMAGE = os.path.join(REPO, "..", "shared", "data", "mitos12_dev", "images", "A01_04.jpg")
IMAGE_MPP = 0.2456  # MITOS-2012 scanner A
# (tile, overlap, batch): the shipped tiling first; then larger batches, less overlap, and one tile per window.
ALL_RUNTIMES = (*RUNTIMES, "openvino")
TILINGS = ((512, 0.25, 4), (512, 0.25, 16), (512, 0.125, 4), (1472, 0.25, 1))


def machine():
    flags = set()
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni")
    versions = {}
    for name in ("tensorflow", "keras", "onnxruntime", "tf2onnx", "openvino", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # an absent package is a fact of the machine, not an error
            versions[name] = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": {f: f in flags for f in wanted},
        # No avx512_bf16 / AMX here means bfloat16 would be emulated: float32 is this machine's fast precision.
        "precision": "float32",
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "versions": versions,
    }


def missing(runtime):
    if runtime == "openvino":
        return None if importlib.util.find_spec("openvino") else "openvino is not installed (pip install openvino)"
    return missing_in_library(runtime)


def openvino_predictor(model):
    import openvino

    from mitoseg_tf.inference.runtimes import _primary_graph, _probability_of_primary

    graph, _ = _primary_graph(model)
    # OpenVINO computes in bfloat16 by default on CPUs that have it; the thresholds were chosen on float32 maps.
    compiled = openvino.Core().compile_model(
        openvino.convert_model(graph), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    )
    to_probability = _probability_of_primary(model)
    return lambda tiles: to_probability(np.asarray(compiled(np.ascontiguousarray(tiles, np.float32))[0]))


def load_window(path, side, at):
    from mitoseg_tf.inference.resample import to_resolution

    if path and os.path.isfile(path):
        from mitoseg_tf.data.images import read_image

        work = to_resolution(read_image(path), IMAGE_MPP, 0.25)
        row = at[0] if at else 0
        col = at[1] if at else work.shape[1] - side
        return np.ascontiguousarray(work[row : row + side, col : col + side]), f"{os.path.basename(path)} @ {row},{col}"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "noise"


def figure_key(figures):
    return sorted(
        (round(f.centroid[0], 2), round(f.centroid[1], 2), int(f.area_px), round(f.score, 4)) for f in figures
    )


def run_variants(variants, repeat):
    """{name: (best seconds, first result)}: one warm-up each, then ``repeat`` interleaved rounds."""
    first, times = {}, {name: [] for name in variants}
    for name, fn in variants.items():
        start = time.perf_counter()
        first[name] = fn()
        print(f"  {name}: warm-up {time.perf_counter() - start:.1f} s", file=sys.stderr)
    for _ in range(repeat):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), first[name], times[name]) for name in variants}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default=DEFAULT_IMAGE, help="an RGB field (MITOS-2012 scanner A pixels); noise if absent")
    p.add_argument("--window", type=int, default=1280, help="side of the slide window, detector pixels")
    p.add_argument("--at", type=int, nargs=2, default=None, help="row col of the window (default: top right)")
    p.add_argument("--runtimes", nargs="+", default=list(ALL_RUNTIMES), choices=ALL_RUNTIMES)
    p.add_argument("--tiling-runtime", default="onnxruntime", choices=RUNTIMES)
    p.add_argument(
        "--parts", nargs="+", default=["runtimes", "tiling", "split"], choices=["runtimes", "tiling", "split"]
    )
    p.add_argument("--repeat", type=int, default=2, help="interleaved timed rounds after the warm-up")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "results", "slide_runtimes.json"))
    args = p.parse_args()

    from mitoseg_tf.detector import Detector
    from mitoseg_tf.inference.runtimes import batch_predictor
    from mitoseg_tf.inference.sliding_window import stitch
    from mitoseg_tf.inference.tiling import plan_tiles
    from mitoseg_tf.models.outputs import network_stride

    detector = Detector.from_weights("unet/mitosis", rescore=False, tta=False)
    window, source = load_window(args.image, args.window, args.at)
    stride = network_stride(detector.model)
    window_mpx = window.shape[0] * window.shape[1] / 1e6
    result = {}
    if args.out and os.path.isfile(args.out):
        # Parts run in separate invocations (to keep each short) add to one record.
        with open(args.out) as fh:
            result = json.load(fh)
    result |= {
        "machine": machine(),
        "detector": detector.describe(),
        "window": {"source": source, "side": args.window, "mpx": window_mpx},
        "repeat": args.repeat,
    }
    predictors = {}

    def predictor(runtime):
        if runtime not in predictors:
            make = openvino_predictor if runtime == "openvino" else (lambda m: batch_predictor(m, runtime))
            predictors[runtime] = make(detector.model)
        return predictors[runtime]

    def window_map(runtime, tile=512, overlap=0.25, batch=4):
        plan = plan_tiles(window.shape, tile, overlap, stride=stride)
        return stitch(window, predictor(runtime), plan, batch_size=batch)

    def network_mpx(tile, overlap):
        plan = plan_tiles(window.shape, tile, overlap, stride=stride)
        return plan.num_tiles * plan.tile_shape[0] * plan.tile_shape[1] / 1e6, plan.num_tiles

    if "runtimes" in args.parts:
        usable = [r for r in args.runtimes if not missing(r)]
        for r in set(args.runtimes) - set(usable):
            print(f"skipped: {missing(r)}", file=sys.stderr)
        print(f"runtimes on {source}, {args.window}^2 window:", file=sys.stderr)
        runs = run_variants({r: (lambda r=r: window_map(r)) for r in usable}, args.repeat)
        base_s, base_map, _ = runs.get("tensorflow", next(iter(runs.values())))
        base_figures = figure_key(detector.figures_native(window, probability=base_map))
        rows = []
        for r, (seconds, prob, times) in runs.items():
            figures = figure_key(detector.figures_native(window, probability=prob))
            rows.append(
                {
                    "runtime": r,
                    "seconds": seconds,
                    "times": times,
                    "window_mpx_s": window_mpx / seconds,
                    "speedup_vs_tensorflow": base_s / seconds,
                    "max_abs_diff": float(np.abs(prob - base_map).max()),
                    "figures": len(figures),
                    "same_figures": figures == base_figures,
                }
            )
        result["runtimes"] = {"load_average": os.getloadavg(), "rows": rows}
        print(
            "\n| runtime | window s (best) | window Mpx/s | x TensorFlow | max abs map diff | figures | same figures |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        for row in rows:
            print(
                f"| {row['runtime']} | {row['seconds']:.2f} | {row['window_mpx_s']:.3f} | "
                f"{row['speedup_vs_tensorflow']:.2f} | {row['max_abs_diff']:.2e} | {row['figures']} | "
                f"{'yes' if row['same_figures'] else 'NO'} |"
            )

    if "tiling" in args.parts and not missing(args.tiling_runtime):
        print(f"tiling on {args.tiling_runtime}:", file=sys.stderr)
        names = {f"{t} px, overlap {o}, batch {b}": (t, o, b) for t, o, b in TILINGS}
        runs = run_variants(
            {n: (lambda t=t, o=o, b=b: window_map(args.tiling_runtime, t, o, b)) for n, (t, o, b) in names.items()},
            args.repeat,
        )
        base_name = next(iter(names))
        base_s, base_map, _ = runs[base_name]
        base_figures = figure_key(detector.figures_native(window, probability=base_map))
        rows = []
        for n, (seconds, prob, times) in runs.items():
            t, o, b = names[n]
            mpx, count = network_mpx(t, o)
            figures = figure_key(detector.figures_native(window, probability=prob))
            rows.append(
                {
                    "tile": t,
                    "overlap": o,
                    "batch": b,
                    "tiles": count,
                    "network_mpx": mpx,
                    "seconds": seconds,
                    "times": times,
                    "window_mpx_s": window_mpx / seconds,
                    "network_mpx_s": mpx / seconds,
                    "speedup_vs_shipped": base_s / seconds,
                    "max_abs_diff": float(np.abs(prob - base_map).max()),
                    "figures": len(figures),
                    "same_figures": figures == base_figures,
                }
            )
        result["tiling"] = {"runtime": args.tiling_runtime, "load_average": os.getloadavg(), "rows": rows}
        print(
            f"\n| tiling ({args.tiling_runtime}) | tiles | network Mpx / window Mpx | window s | window Mpx/s | ",
            end="",
        )
        print("network Mpx/s | x shipped | max abs map diff | figures | same figures |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in rows:
            print(
                f"| {row['tile']} px, overlap {row['overlap']}, batch {row['batch']} | {row['tiles']} | "
                f"{row['network_mpx'] / window_mpx:.2f} | {row['seconds']:.2f} | {row['window_mpx_s']:.3f} | "
                f"{row['network_mpx_s']:.3f} | {row['speedup_vs_shipped']:.2f} | {row['max_abs_diff']:.2e} | "
                f"{row['figures']} | {'yes' if row['same_figures'] else 'NO'} |"
            )

    if "split" in args.parts:
        plan = plan_tiles(window.shape, 512, 0.25, stride=stride)

        def zeros(tiles):
            return np.zeros(tiles.shape[:3], np.float32)

        prob = window_map(args.runtimes[0])
        blend_s = best_of(3, lambda: stitch(window, zeros, plan, batch_size=4))
        figures_s = best_of(3, lambda: detector.figures_native(window, probability=prob))
        result["split"] = {"blend_only_s": blend_s, "figure_extraction_s": figures_s, "tiles": plan.num_tiles}
        print(f"\nblending alone {blend_s:.3f} s, figure extraction {figures_s:.3f} s per {args.window}^2 window")

    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
