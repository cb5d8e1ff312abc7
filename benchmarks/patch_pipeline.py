"""Does the large-image patch stream keep up with training? (issue: streaming patches)

Prints the rate at which the pipeline produces augmented 256x256 training
patches from large images (decoded once per visit, ``patches_per_image``
patches each) next to the rate at which MCSA-Unet (base width 32, mixed
bfloat16 by default) consumes them in training, and their ratio (target >= 4).

    python benchmarks/patch_pipeline.py                      # MITOS-2012 fields from ../shared/data
    python benchmarks/patch_pipeline.py --data-dir DIR --data mitos12
    python benchmarks/patch_pipeline.py --quick              # smaller model and fewer steps

Without ../shared/data it builds four 2048x2048 images from synthetic tiles.
Both rates are measured in one process one after the other (the pipeline
alone, then training steps on in-memory batches), so they share the same
machine load; the ratio is the figure to read, absolute rates drift.
"""

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED_MITOS12 = os.path.join(REPO, "..", "shared", "data", "mitos12_dev")


def _synthetic_folder(root):
    import numpy as np
    from PIL import Image

    from mitoseg_tf.data import synthetic

    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    images, masks = synthetic.load_arrays("train", num_examples=64, size=256, seed=0)
    for k in range(4):
        order = np.random.default_rng(k).permutation(64)
        big = images[order].reshape(8, 8, 256, 256, 3).transpose(0, 2, 1, 3, 4).reshape(2048, 2048, 3)
        big_mask = masks[order].reshape(8, 8, 256, 256).transpose(0, 2, 1, 3).reshape(2048, 2048)
        Image.fromarray(big).save(os.path.join(root, "images", f"big{k}.png"))
        Image.fromarray(big_mask * 255).save(os.path.join(root, "masks", f"big{k}.png"))
    return "folder", root


def pipeline_rate(data, data_dir, prepared_dir, patch, batch, batches, patches_per_image):
    from mitoseg_tf.data.builders import load_dataset
    from mitoseg_tf.data.patches import make_patch_pipeline

    records = load_dataset(data, "all", data_dir, decode=False, prepared_dir=prepared_dir)
    ds = make_patch_pipeline(records, batch_size=batch, patch_size=patch, patches_per_image=patches_per_image)
    it = iter(ds)
    for _ in range(3):  # warm-up: first decodes and graph tracing
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def training_rate(model_name, width, precision, patch, batch, steps):
    import keras
    import numpy as np

    from mitoseg_tf.training import compile_model, set_precision
    from mitoseg_tf.zoo import build

    set_precision(precision)
    model = compile_model(build(model_name, input_shape=(patch, patch, 3), base_filters=width), metrics=None)
    x = np.random.default_rng(0).uniform(0, 255, (batch, patch, patch, 3)).astype("float32")
    y = (np.random.default_rng(1).uniform(size=(batch, patch, patch, 1)) > 0.98).astype("int32")
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    rate = steps * batch / (time.perf_counter() - start)
    keras.backend.clear_session()
    return rate


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="dataset name (default mitos12 when ../shared/data is present)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default="mcsa_unet")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument("--patch", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patches-per-image", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="width 16, fewer steps")
    args = p.parse_args()
    batches, steps = (10, 3) if args.quick else (40, 8)
    width = 16 if args.quick else args.width

    with tempfile.TemporaryDirectory() as tmp:
        if args.data_dir:
            data, data_dir = args.data or "mitos12", args.data_dir
        elif os.path.isdir(SHARED_MITOS12):
            data, data_dir = "mitos12", SHARED_MITOS12
        else:
            data, data_dir = _synthetic_folder(os.path.join(tmp, "raw"))
        produce = pipeline_rate(
            data, data_dir, os.path.join(tmp, "prepared"), args.patch, args.batch, batches, args.patches_per_image
        )
        consume = training_rate(args.model, width, args.precision, args.patch, args.batch, steps)
    print(f"\n| what | patches/s ({args.patch}x{args.patch}) |")
    print("|---|---|")
    print(f"| pipeline: {data} images, {args.patches_per_image} augmented patches per decode | {produce:.1f} |")
    print(f"| training: {args.model} width {width}, {args.precision}, batch {args.batch} | {consume:.2f} |")
    print(f"\npipeline / training = {produce / consume:.1f}x (target >= 4x); {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
