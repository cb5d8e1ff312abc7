"""What one run of a comparison recipe costs, per network, before the campaign spends hours on it.

For every network of a ``mitoseg compare --recipe`` file, at the recipe's width,
``model_args``, batch, crop, loss and precision: the seconds of a training step
(``compare.budget.measure_step``, random data) and of a forward pass over one
batch of ``eval_tile`` tiles, turned into minutes for the recipe's steps plus
the passes a run makes over its scored images (the validation tiles, the
whole-image detection pass over the same pixels, measured at 1.7 tile passes,
and the test tiles twice). The
slowest network decides the campaign's steps, since every network gets the
same; ``--target-minutes`` prints the steps that would fit it.

    python benchmarks/compare_plan.py zoo/recipes/compare_atypia.yaml --validation-tiles 594 --test-tiles 80
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def forward_seconds(name, base_filters, model_args, tile, batch=4, repeats=2):
    """Seconds of one inference batch of ``batch`` tiles of ``tile`` px, after a warm-up call."""
    import keras
    import numpy as np

    from mitoseg_tf.zoo import build, get_card

    model = build(name, input_shape=(None, None, 3), **{**get_card(name).width_arguments(base_filters), **model_args})
    x = np.random.default_rng(0).uniform(0, 255, (batch, tile, tile, 3)).astype("float32")
    model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict_on_batch(x)
    keras.backend.clear_session()
    return (time.perf_counter() - start) / repeats / batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--models", nargs="+", help="default: the recipe's")
    parser.add_argument("--validation-tiles", type=int, required=True, help="eval_tile tiles in the validation split")
    parser.add_argument("--test-tiles", type=int, default=0)
    # Measured on the first 1,200-step U-Net run: the tile pass, then the whole-image detection pass at 1.7 of it.
    parser.add_argument("--passes", type=float, default=2.7, help="tile passes' worth of scoring a run makes")
    parser.add_argument("--target-minutes", type=float, default=30.0)
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from mitoseg_tf.compare.budget import measure_step
    from mitoseg_tf.compare.recipe import load_compare_recipe
    from mitoseg_tf.training import set_precision

    recipe = load_compare_recipe(args.recipe)
    base = recipe.base
    precision = set_precision(base.precision)
    steps = base.epochs * base.steps_per_epoch
    print(
        f"{args.recipe}: width {base.base_filters}, batch {base.batch_size} x {base.crop_size} px, {steps} steps, "
        f"{precision}; {args.validation_tiles} validation tiles x {args.passes:g} passes + {args.test_tiles} test "
        f"tiles x 2, {base.eval_tile} px\n"
    )
    print("| network | s/step | s/validation pass | run minutes | steps in the target minutes |")
    print("|---|---|---|---|---|")
    worst = None
    for name in args.models or recipe.models:
        config = recipe.run_config(name, base.seed, "unused")
        _, step, _ = measure_step(
            name,
            base_filters=config.base_filters,
            model_args=config.model_args,
            batch_size=config.batch_size,
            crop_size=config.crop_size,
            loss=config.loss,
            learning_rate=config.learning_rate,
            validation_pixels=0,
            steps=3,
        )
        tile = forward_seconds(name, config.base_filters, config.model_args, config.eval_tile)
        scoring = tile * (args.validation_tiles * args.passes + 2 * args.test_tiles)
        minutes = (steps * step + scoring) / 60 + 1.0  # ~1 min of tracing and plots
        fits = int(max(args.target_minutes * 60 - 60 - scoring, 0) // step)
        print(
            f"| {name} | {step:.2f} | {tile * args.validation_tiles:.0f} | {minutes:.1f} | {fits} |",
            flush=True,
        )
        worst = max(worst or (0, "", 0), (minutes, name, fits))
    print(f"\nslowest: {worst[1]}, {worst[0]:.1f} min; {worst[2]} steps would fit {args.target_minutes:g} min")


if __name__ == "__main__":
    main()
