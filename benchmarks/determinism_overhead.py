"""Cost of TensorFlow op determinism (``mitoseg train --deterministic``, the default) on training speed.

Each setting trains in its own process (op determinism cannot be switched off
once on) with the same seed, model and data; prints seconds per step after
warm-up and the ratio.

    python benchmarks/determinism_overhead.py --model unet --width 8 --size 64 --batch 4
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))


def measure(deterministic, model_name, width, size, batch, steps, precision):
    import keras
    import numpy as np

    from mitoseg_tf.training import compile_model
    from mitoseg_tf.training.record import seed_everything
    from mitoseg_tf.zoo import build

    keras.mixed_precision.set_global_policy(precision)
    seed_everything(0, deterministic)
    model = compile_model(build(model_name, base_filters=width, input_shape=(size, size, 3)))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = (rng.uniform(size=(batch, size, size, 1)) < 0.05).astype("int32")
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps, float(np.ravel(loss)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="alternate the two settings this many times; best kept")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = (args.model, args.width, args.size, args.batch, args.steps, args.precision)
    if args.one:
        seconds, loss = measure(args.one == "on", *options)
        print("RESULT", seconds, loss)
        return
    best = {}
    for _ in range(args.repeat):
        for setting in ("off", "on"):
            cmd = [sys.executable, __file__, "--one", setting] + [
                f"--{k}={getattr(args, k)}" for k in ("model", "width", "size", "batch", "steps", "precision")
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            seconds, loss = map(float, next(l for l in out.splitlines() if l.startswith("RESULT")).split()[1:])
            best[setting] = min(best.get(setting, (float("inf"), loss)), (seconds, loss))
    print(
        f"{args.model} width {args.width}, {args.size}x{args.size}, batch {args.batch}, {args.precision}, "
        f"{args.steps} steps, best of {args.repeat}\n"
    )
    print("| op determinism | s/step | loss after the steps |")
    print("|---|---:|---:|")
    for setting in ("off", "on"):
        print(f"| {setting} | {best[setting][0]:.4f} | {best[setting][1]:.6f} |")
    print(f"\nslowdown with determinism: {best['on'][0] / best['off'][0]:.3f}x")


if __name__ == "__main__":
    main()
