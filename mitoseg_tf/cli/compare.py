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
        "--budget-minutes",
        type=float,
        default=None,
        help=f"scale epochs to fit this time (default {SYNTHETIC_DEFAULT_BUDGET_MINUTES:g} on synthetic, "
        "none otherwise: --epochs is used); 0 turns the budget off",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs per run when there is no time budget")
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per batch")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="side of the square training crops")
    p.add_argument(
        "--base-filters", type=int, default=d.base_filters, help="first-level width of every network (the paper's: 64)"
    )
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam learning rate")
    p.add_argument("--loss", default=d.loss, help="ce, dice, ce_dice or focal (default: each model's own)")
    p.add_argument("--precision", default=d.precision, help="auto, float32, mixed_bfloat16 or mixed_float16")
    p.add_argument("--tiny", action="store_true", help="each model's tiny test configuration (smoke runs)")
    p.add_argument("--match-distance-um", type=float, default=d.match_distance_um, help="detection match radius")
    p.add_argument("--mpp", type=float, default=None, help="microns per pixel when the data does not say")
    p.add_argument(
        "--aggregation",
        default=d.aggregation,
        choices=("pooled", "per_image"),
        help="metrics over all pixels of a split (pooled) or averaged per image",
    )
    p.add_argument("--num-examples", type=int, default=None, help=argparse.SUPPRESS)  # tiles per split, for tests
    p.add_argument(
        "--recipe",
        default=None,
        help="a comparison recipe (zoo/recipes/compare_atypia.yaml): every (model, seed) trained as `mitoseg train "
        "--recipe` with its model and seed, and recorded in --records; recorded runs are skipped",
    )
    p.add_argument(
        "--records",
        default=None,
        help="records folder (default: the recipe's compare.records, else docs/results/compare_atypia)",
    )
    p.add_argument("--max-runs", type=int, default=None, help="with --recipe: train at most this many runs now")
    p.add_argument(
        "--report",
        action="store_true",
        help="rebuild the tables, the paired test and the figure from --records alone (no training)",
    )
    p.add_argument(
        "--ship",
        metavar="TAG",
        default=None,
        help="with --recipe, no training: ship each Table 2 network's best seed on validation (Mean Dice) from its "
        "run folder under --out as float16 weights, build(name, weights=TAG), with a card from its record",
    )
    p.add_argument(
        "--weights-dir",
        default=None,
        help="with --ship: the weights folder and its manifest.json (default: the package's)",
    )


# With --recipe the recipe fixes the training; these may still be given.
RECIPE_OPTIONS = ("recipe", "records", "max_runs", "report", "out", "models", "data_dir", "command", "verbose")


# With --ship nothing trains: the recipe and its records choose what ships.
SHIP_OPTIONS = ("recipe", "records", "out", "models", "ship", "weights_dir", "command", "verbose")


def _refuse_others(args, allowed, why):
    defaults = argparse.ArgumentParser()
    add_parser(defaults.add_subparsers())
    defaults = vars(defaults.parse_args(["compare"]))
    given = sorted(k for k, v in vars(args).items() if k in defaults and k not in allowed and v != defaults[k])
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{why}; remove {flags}.")


def _recipe_run(args):
    _refuse_others(args, RECIPE_OPTIONS, "--recipe fixes the training options (edit the recipe to change them)")
    from mitoseg_tf.compare.recipe import run_recipe_compare

    result = run_recipe_compare(
        args.recipe,
        output_dir=args.out,
        records_dir=args.records,
        models=args.models,
        max_runs=args.max_runs,
        overrides={"data_dir": args.data_dir} if args.data_dir else None,
        log=lambda *a: print(*a, flush=True),
    )
    if args.report or not result["left"]:
        _report(args.records or result["records_dir"])
    return 1 if result["changed"] else 0


def _report(records_dir):
    from mitoseg_tf.compare.report import build_report

    result = build_report(records_dir)
    print(result["markdown"])
    print(f"Wrote report.md{', figure5.png' if result['figure'] else ''} and the CSV tables to {records_dir}")
    return 0


def _ship(args):
    if not args.recipe:
        raise ValueError("--ship needs --recipe: the comparison recipe whose records choose what ships.")
    _refuse_others(args, SHIP_OPTIONS, "--ship trains nothing and takes the recipe's settings")
    from mitoseg_tf.compare.shipping import ship_comparison

    result = ship_comparison(
        args.recipe,
        args.out,
        args.ship,
        records_dir=args.records,
        models=args.models,
        weights_dir=args.weights_dir,
        log=lambda *a: print(*a, flush=True),
    )
    print(f"Shipped {len(result['shipped'])} of {len(result['shipped']) + len(result['not_shipped'])} networks")
    return 1 if result["not_shipped"] else 0


def run(args):
    """Build the ``CompareConfig`` from the arguments and run the comparison (or the recipe's, the report, shipping)."""
    if args.ship:
        return _ship(args)
    if args.weights_dir:
        raise ValueError("--weights-dir is where --ship writes; give it with --ship.")
    if args.recipe:
        return _recipe_run(args)
    if args.report:
        from mitoseg_tf.compare.records import DEFAULT_RECORDS

        return _report(args.records or DEFAULT_RECORDS)
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
