"""``mitoseg``: train, evaluate, export and list the zoo's models from the shell.

Thin wrappers over ``mitoseg_tf.training`` and ``mitoseg_tf.zoo``; every
user error becomes one line on stderr and exit status 2, not a traceback.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_train(sub):
    from mitoseg_tf.training.run import RunConfig

    d = RunConfig()
    p = sub.add_parser("train", help="train a zoo model (default: MCSA-Unet on the built-in synthetic set)")
    p.add_argument("--model", default=d.model, help="registered model name (see `mitoseg models`)")
    p.add_argument("--data", default=d.data, help="data source: synthetic (default) or synthetic_tfds")
    p.add_argument("--data-dir", default=d.data_dir, help="where data sources read or prepare their files")
    p.add_argument("--base-filters", type=int, default=d.base_filters, help="width of the first level")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="side of the square training crops")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--loss", default=d.loss, help="ce (paper), dice, ce_dice or focal")
    p.add_argument("--precision", default=d.precision, help="auto, float32, mixed_bfloat16 or mixed_float16")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-dir", default=d.output_dir, help="parent folder of the run folder")
    p.add_argument("--run-name", default=None, help="run folder name (default: model and time)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--num-examples", type=int, default=None, help=argparse.SUPPRESS)  # tiles per split, for tests
    p.add_argument("--strategy", default=d.strategy, help="none, mirrored (all local devices) or multi_worker (TF_CONFIG)")
    p.add_argument("--resume", action="store_true", help="continue --run-name after an interruption")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=d.deterministic,
                   help="TensorFlow op determinism (bitwise-reproducible runs)")


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score a checkpoint on a data split and print the metrics table")
    p.add_argument("checkpoint", help="a .keras file, e.g. runs/NAME/best.keras")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic set (must match training's)")
    p.add_argument("--num-examples", type=int, default=None, help=argparse.SUPPRESS)  # tiles, for tests


def _add_models(sub):
    p = sub.add_parser("models", help="list the registered models with parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'unet*'")
    p.add_argument("--no-params", action="store_true", help="skip building models to count parameters")


def _add_export(sub):
    p = sub.add_parser("export", help="write a checkpoint as a SavedModel that serves whole images of any size")
    p.add_argument("--checkpoint", required=True, help="a .keras file, e.g. runs/NAME/best.keras")
    p.add_argument("--out", required=True, help="folder for the SavedModel")
    p.add_argument("--threshold", type=float, default=0.5, help="probability above which the mask is 1")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")


def parser():
    p = argparse.ArgumentParser(prog="mitoseg", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_models(sub)
    _add_export(sub)
    return p


def _train(args):
    from mitoseg_tf.training.run import RunConfig, train_run

    config = RunConfig(
        model=args.model,
        data=args.data,
        data_dir=args.data_dir,
        base_filters=args.base_filters,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        learning_rate=args.learning_rate,
        loss=args.loss,
        precision=args.precision,
        seed=args.seed,
        output_dir=args.output_dir,
        run_name=args.run_name,
        tensorboard=args.tensorboard,
        num_examples=args.num_examples,
        strategy=args.strategy,
        resume=args.resume,
        deterministic=args.deterministic,
    )
    train_run(config)


def _evaluate(args):
    from mitoseg_tf.data.pipeline import make_pipeline
    from mitoseg_tf.data.sources import load_source
    from mitoseg_tf.training import evaluate, format_table
    from mitoseg_tf.training.checkpoint import load_checkpoint
    from mitoseg_tf.training.targets import output_roles

    model = load_checkpoint(args.checkpoint)
    source = load_source(args.data, args.split, data_dir=args.data_dir, num_examples=args.num_examples, seed=args.seed)
    data = make_pipeline(source, training=False, batch_size=args.batch_size, roles=output_roles(model))
    print(format_table(evaluate(model, data), title=f"{model.name} on {args.data}/{args.split}"))


def _models(args):
    from mitoseg_tf.zoo import build, get_card, list_models

    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"No registered model matches {args.pattern!r}; registered: {', '.join(list_models())}.")
    print("| model | parameters (paper defaults) | summary |")
    print("|---|---|---|")
    for name in names:
        params = "-" if args.no_params else f"{build(name).count_params():,}"
        print(f"| {name} | {params} | {get_card(name).summary} |")


def _export(args):
    from mitoseg_tf.export import card_from_run, export
    from mitoseg_tf.training.checkpoint import load_checkpoint

    if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
        raise ValueError(f"{args.out!r} exists and is not empty; pass --overwrite or choose another folder.")
    model = load_checkpoint(args.checkpoint)
    # A run folder keeps config.json / metrics.json beside best.keras; they fill the model card.
    run_dir, checkpoint = os.path.split(os.path.abspath(args.checkpoint))
    card = card_from_run(run_dir)
    # Run folder and file name only: an absolute path would leak the exporting machine's layout.
    card["checkpoint"] = f"{os.path.basename(run_dir)}/{checkpoint}"
    written = export(model, args.out, card=card, threshold=args.threshold)
    print(
        f"SavedModel of {written['name']} written to {args.out} (stride {written['input']['stride']}, "
        f"threshold {written['threshold']}); model card: {os.path.join(args.out, 'assets', 'model_card.json')}"
    )


def main(argv=None):
    args = parser().parse_args(argv)
    handler = {"train": _train, "evaluate": _evaluate, "models": _models, "export": _export}[args.command]
    try:
        handler(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"mitoseg {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
