"""``mitoseg compare``: the paper's Table 1 / Table 2 comparison on a dataset, resumable, within a time budget."""

import argparse

# Without --budget-minutes the built-in synthetic set gets one that fits an hour on a 2-core CPU.
SYNTHETIC_DEFAULT_BUDGET_MINUTES = 50.0


def _names(text):
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_parser(subparsers):
    """Register ``compare`` on the ``mitoseg`` subcommand parser."""
    from mitoseg_tf.config import CompareConfig

    d = CompareConfig()
    p = subparsers.add_parser(
        "compare", help="train and score the paper's Table 1 / Table 2 models; write tables and a Figure-5 panel"
    )
    p.add_argument("--out", default=d.output_dir, help="output folder (resumable: finished runs are kept)")
    p.add_argument("--models", type=_names, default=(), help="comma-separated model names (default: the tables')")
    p.add_argument("--tables", type=_names, default=d.tables, help="table1, table2 or both (default)")
    p.add_argument("--repeats", type=int, default=d.repeats, help="seeds per model")
    p.add_argument("--seed", type=int, default=d.seed, help="first seed")
    p.add_argument("--data", default=d.data, help="data source: synthetic or a dataset of `mitoseg datasets list`")
    p.add_argument("--data-dir", default=None, help="the dataset's folder")
    p.add_argument(
        "--budget-minutes", type=float, default=None,
        help=f"scale epochs to fit this time (default {SYNTHETIC_DEFAULT_BUDGET_MINUTES:g} on synthetic, "
        "none otherwise: --epochs is used); 0 turns the budget off",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs per run when there is no time budget")
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per batch")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="side of the square training crops")
    p.add_argument("--base-filters", type=int, default=d.base_filters,
                   help="first-level width of every network (the paper's: 64)")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam learning rate")
    p.add_argument("--loss", default=d.loss, help="ce, dice, ce_dice or focal (default: each model's own)")
    p.add_argument("--precision", default=d.precision, help="auto, float32, mixed_bfloat16 or mixed_float16")
    p.add_argument("--tiny", action="store_true", help="each model's tiny test configuration (smoke runs)")
    p.add_argument("--match-distance-um", type=float, default=d.match_distance_um, help="detection match radius")
    p.add_argument("--mpp", type=float, default=None, help="microns per pixel when the data does not say")
    p.add_argument("--aggregation", default=d.aggregation, choices=("pooled", "per_image"),
                   help="metrics over all pixels of a split (pooled) or averaged per image")
    p.add_argument("--num-examples", type=int, default=None, help=argparse.SUPPRESS)  # tiles per split, for tests


def run(args):
    """Build the ``CompareConfig`` from the arguments and run the comparison."""
    from mitoseg_tf.compare import CompareConfig, run_compare

    budget = args.budget_minutes
    if budget is None and args.data == "synthetic":
        budget = SYNTHETIC_DEFAULT_BUDGET_MINUTES
    config = CompareConfig(
        output_dir=args.out,
        models=args.models,
        tables=args.tables,
        repeats=args.repeats,
        seed=args.seed,
        data=args.data,
        data_dir=args.data_dir,
        num_examples=args.num_examples,
        tiny=args.tiny,
        base_filters=args.base_filters,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        learning_rate=args.learning_rate,
        loss=args.loss,
        precision=args.precision,
        budget_minutes=budget or None,
        match_distance_um=args.match_distance_um,
        mpp=args.mpp,
        aggregation=args.aggregation,
    )
    return run_compare(config, log=lambda *a: print(*a, flush=True))
