"""Sliding-window overhead: whole-image prediction vs the network alone on the same tiles.

For each model x precision, on one 2084x2084 RGB image (tile 512, overlap
0.25, batch 4 by default), times

- ``network``: the network alone (``probability_fn``: predict_on_batch + the
  output activation) on the same number of tiles in the same batches;
- ``predict_image``: the whole sliding-window prediction (padding, tile
  extraction, the network, Gaussian blending, stitching);
- ``stitch only``: the sliding window with a network that returns zeros,

and prints the overhead ``predict_image / network - 1`` (target <= 15 %) and
megapixels per second of ``predict_image``. Each configuration runs in a fresh
subprocess so the dtype policy cannot leak. Warm-up calls trace every batch
shape first. The machine may be shared: compare rows of one run.

    python benchmarks/sliding_window.py
    python benchmarks/sliding_window.py --models unet --precisions float32 --size 1024 --width 16
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(cfg):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO)
    import keras
    import numpy as np

    from mitoseg_tf.inference import plan_tiles, predict_image, probability_fn, stitch
    from mitoseg_tf.models.outputs import network_stride
    from mitoseg_tf.zoo import build

    keras.mixed_precision.set_global_policy(cfg["precision"])
    model = build(cfg["model"], input_shape=(None, None, 3), base_filters=cfg["width"])
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (cfg["size"], cfg["size"], 3), dtype=np.uint8)
    plan = plan_tiles(image.shape, cfg["tile"], cfg["overlap"], stride=network_stride(model))
    predict = probability_fn(model)
    batch_sizes = [min(cfg["batch"], plan.num_tiles - i) for i in range(0, plan.num_tiles, cfg["batch"])]
    tiles = {b: rng.uniform(0, 255, (b, *plan.tile_shape, 3)).astype(np.float32) for b in set(batch_sizes)}
    for b in tiles:  # trace every batch shape before timing
        predict(tiles[b])

    def network():
        for b in batch_sizes:
            predict(tiles[b])

    def whole():
        predict_image(model, image, tile=cfg["tile"], overlap=cfg["overlap"], batch_size=cfg["batch"])

    def stitch_only():
        stitch(image, lambda t: np.zeros(t.shape[:3], np.float32), plan, batch_size=cfg["batch"])

    times = {"network": [], "predict_image": [], "stitch": []}
    for _ in range(cfg["repeat"]):
        for key, fn in (("network", network), ("predict_image", whole), ("stitch", stitch_only)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    return {**cfg, **best, "tiles": plan.num_tiles, "tile_shape": list(plan.tile_shape)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="unet,mcsa_unet")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--size", type=int, default=2084)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="timed repetitions per configuration (best kept)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT" + json.dumps(_worker(json.loads(args.worker))))
        return
    rows = []
    for model in args.models.split(","):
        for precision in args.precisions.split(","):
            cfg = dict(
                model=model,
                precision=precision,
                width=args.width,
                size=args.size,
                tile=args.tile,
                overlap=args.overlap,
                batch=args.batch,
                repeat=args.repeat,
            )
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True, cwd=REPO
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
            if line is None:
                sys.exit(f"{model}/{precision} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(line[len("RESULT") :]))
            print(f"done {model} {precision}", file=sys.stderr, flush=True)
    r0 = rows[0]
    print(
        f"Sliding window on a {r0['size']}x{r0['size']} image: tile {r0['tile']}, overlap {r0['overlap']}, "
        f"batch {r0['batch']}, {r0['tiles']} tiles of {r0['tile_shape'][0]}x{r0['tile_shape'][1]}, width {r0['width']}; "
        f"best of {r0['repeat']}; {os.cpu_count()} cores\n"
    )
    print("| model | precision | network s | predict_image s | stitch only s | overhead | MP/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        overhead = r["predict_image"] / r["network"] - 1.0
        mp = r["size"] ** 2 / 1e6 / r["predict_image"]
        print(
            f"| {r['model']} | {r['precision']} | {r['network']:.2f} | {r['predict_image']:.2f} | "
            f"{r['stitch']:.3f} | {100 * overhead:+.1f} % | {mp:.3f} |"
        )


if __name__ == "__main__":
    main()
