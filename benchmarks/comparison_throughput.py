"""Throughput, parameters and FLOPs of the comparison networks, with keras-unet-collection as a peer.

For each zoo model (default: unet, mcsa_unet, res_unet, unet_plus_plus,
unet_3plus) at matching widths, prints training and inference images/s at
256x256 in float32 and mixed bfloat16, the parameter count and the forward
GFLOPs per image (benchmarks/flops.py). When keras-unet-collection is
installed and its builders work on the installed Keras, its `unet_plus_2d` and
`unet_3plus_2d` are timed in the same run at the same widths and the zoo/peer
speed ratio is printed (a benchmark-only dependency: `pip install
keras-unet-collection`).

    python benchmarks/comparison_throughput.py --width 16 --batch 4
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = ("unet", "mcsa_unet", "res_unet", "unet_plus_plus", "unet_3plus")
PEERS = ("kuc_unet_plus_2d", "kuc_unet_3plus_2d")


def _build(name, width, size):
    if name == "kuc_unet_plus_2d":
        from keras_unet_collection import models

        widths = [width * 2**i for i in range(5)]
        return models.unet_plus_2d((size, size, 3), widths, n_labels=2, deep_supervision=False, batch_norm=False)
    if name == "kuc_unet_3plus_2d":
        from keras_unet_collection import models

        widths = [width * 2**i for i in range(5)]
        return models.unet_3plus_2d(
            (size, size, 3), n_labels=2, filter_num_down=widths, deep_supervision=False, batch_norm=True
        )
    from mitoseg_tf.zoo import build

    # UNet 3+ skips at the first level's width, as keras-unet-collection's "auto" does
    overrides = {
        "unet_plus_plus": dict(deep_supervision=False),
        "unet_3plus": dict(deep_supervision=False, cgm=False, skip_filters=width),
    }
    return build(name, base_filters=width, input_shape=(size, size, 3), **overrides.get(name, {}))


def _worker(cfg):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO)
    import keras
    import numpy as np

    from benchmarks.flops import forward_flops

    keras.mixed_precision.set_global_policy(cfg["precision"])
    model = _build(cfg["model"], cfg["width"], cfg["size"])
    flops = forward_flops(model, cfg["size"], cfg["size"])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (cfg["batch"], cfg["size"], cfg["size"], 3)).astype("float32")
    y = (rng.uniform(size=(cfg["batch"], cfg["size"], cfg["size"], 1)) < 0.05).astype("int32")

    def rate(step):
        for _ in range(2):
            step()
        out = []
        for _ in range(cfg["windows"]):
            start = time.perf_counter()
            for _ in range(cfg["steps"]):
                step()
            out.append(cfg["batch"] * cfg["steps"] / (time.perf_counter() - start))
        return statistics.median(out)

    result = dict(
        params=model.count_params(),
        gflops=flops / 1e9,
        train=rate(lambda: model.train_on_batch(x, y)),
        infer=rate(lambda: model.predict_on_batch(x)),
    )
    print("RESULT " + json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO))
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(json.loads(args.worker))
    names = list(args.models)
    if not args.no_peers:
        try:
            import keras_unet_collection  # noqa: F401

            names += list(PEERS)
        except ImportError:
            print("keras-unet-collection not installed: no peer rows\n")
    print(f"width {args.width}, {args.size}x{args.size}, batch {args.batch}, median of {args.windows} windows\n")
    print("| model | precision | params | GFLOP/img (fwd) | train img/s | infer img/s |")
    print("|---|---|---|---|---|---|")
    results = {}
    for name in names:
        for precision in args.precisions:
            cfg = dict(
                model=name,
                precision=precision,
                width=args.width,
                batch=args.batch,
                size=args.size,
                steps=args.steps,
                windows=args.windows,
            )
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True
            )
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
                print(f"| {name} | {precision} | failed: {last} | | | |")
                continue
            r = json.loads(line[7:])
            results[(name, precision)] = r
            print(
                f"| {name} | {precision} | {r['params']:,} | {r['gflops']:.2f} | {r['train']:.2f} | {r['infer']:.2f} |"
            )
    pairs = (("unet_plus_plus", "kuc_unet_plus_2d"), ("unet_3plus", "kuc_unet_3plus_2d"))
    rows = []
    for zoo, peer in pairs:
        for precision in args.precisions:
            if (zoo, precision) in results and (peer, precision) in results:
                z, p = results[(zoo, precision)], results[(peer, precision)]
                rows.append(
                    f"| {zoo} / {peer} | {precision} | {z['train'] / p['train']:.2f} | {z['infer'] / p['infer']:.2f} |"
                )
    if rows:
        print("\n| zoo / peer speed | precision | train | infer |\n|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
