"""Training and inference images/s of zoo models on a GPU with the JAX backend.

The GPU path imports no TensorFlow (a GPU host may have JAX but no TF): the
model code is backend-agnostic and batches are NumPy arrays placed on the
device once. Prints one Markdown table per run with images/s, achieved
TFLOP/s (analytic FLOPs, training = 3x forward) and that rate as a fraction of
the GPU's measured bfloat16 matrix-multiply rate.

    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py --models unet mcsa_unet --width 32 --batch 32

A smoke run on a CPU (tiny sizes; tests/test_gpu_benchmark_without_tf.py runs it
with TensorFlow blocked):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python benchmarks/gpu_throughput.py --models unet \
        --precisions mixed_bfloat16 --width 4 --batch 2 --size 32 --steps 1 --windows 1 --matmul-size 256
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))


def matmul_rate(n=8192, repeats=10):
    """Measured dense bfloat16 matmul TFLOP/s on the default device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.bfloat16)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = f(a, b)
    out.block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def measure(model_name, precision, width, batch, size, steps, windows):
    import jax
    import keras
    import numpy as np

    from benchmarks.flops import forward_flops
    from mitoseg_tf.training import compile_model
    from mitoseg_tf.zoo import build

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build(model_name, base_filters=width, input_shape=(size, size, 3))
    flops = forward_flops(model, size, size)
    compile_model(model, metrics=None)
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    y = jax.device_put((rng.uniform(size=(batch, size, size, 1)) < 0.05).astype("int32"))

    def rate(step):
        for _ in range(3):
            step()
        results = []
        for _ in range(windows):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            results.append(batch * steps / (time.perf_counter() - start))
        return statistics.median(results)

    train = rate(lambda: model.train_on_batch(x, y))
    infer = rate(lambda: model.predict_on_batch(x))
    return dict(params=model.count_params(), gflops=flops / 1e9, train=train, infer=infer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["unet", "mcsa_unet"])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument(
        "--matmul-size", type=int, default=8192, help="side of the square bf16 matmul timed for the peak rate"
    )
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one model x precision, so policies never leak between runs
        r = measure(args.one[0], args.one[1], args.width, args.batch, args.size, args.steps, args.windows)
        print("RESULT", r["params"], r["gflops"], r["train"], r["infer"], "tensorflow" in sys.modules)
        return
    import jax
    import keras

    peak = matmul_rate(args.matmul_size)
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), measured bf16 matmul: {peak:.3g} TFLOP/s")
    print(f"Keras backend: {keras.backend.backend()}")
    print(f"width {args.width}, {args.size}x{args.size}, batch {args.batch}\n")
    print(
        "| model | precision | params | GFLOP/img (fwd) | train img/s | infer img/s | train TFLOP/s | fraction of bf16 matmul |"
    )
    print("|---|---|---|---|---|---|---|---|")
    tf_used = False
    for name in args.models:
        for precision in args.precisions:
            cmd = [sys.executable, __file__, "--one", name, precision] + [
                f"--{k}={v}"
                for k, v in (
                    ("width", args.width),
                    ("batch", args.batch),
                    ("size", args.size),
                    ("steps", args.steps),
                    ("windows", args.windows),
                )
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT")), None)
            if line is None:
                print(
                    f"| {name} | {precision} | failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else '?'} |"
                )
                continue
            params, gflops, train, infer, tf_loaded = line.split()[1:]
            tf_used |= tf_loaded == "True"
            achieved = float(train) * 3 * float(gflops) / 1e3
            print(
                f"| {name} | {precision} | {int(params):,} | {float(gflops):.3g} | {float(train):.3g} | "
                f"{float(infer):.3g} | {achieved:.3g} | {achieved / peak:.2%} |"
            )
    print(f"\nTensorFlow imported by the measuring processes: {'yes' if tf_used else 'no'}")


if __name__ == "__main__":
    main()
