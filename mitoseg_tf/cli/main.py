"""``mitoseg``: train, evaluate, export and list the zoo's models from the shell.

Thin wrappers over ``mitoseg_tf.training`` and ``mitoseg_tf.zoo``. Exit status:
0 done; 1 a command over many files finished, but some files failed (each named
in its output); 2 a user error (a bad option, a missing or malformed file): one
line on stderr, "mitoseg COMMAND: error: ..."; 3 anything else, a fault of the
program: one line that says so and how to see the traceback (``--verbose``).

Nothing heavy is imported at module level, here or in the subcommand modules'
``add_parser``: ``mitoseg --help`` and every subcommand's ``--help`` must not
load TensorFlow (seconds). Handlers import what they use.
"""

# First: hides TensorFlow's start-up lines whichever handler imports it (``--verbose`` undoes it).
from mitoseg_tf import _quiet  # noqa: I001

import argparse
import os
import sys

from mitoseg_tf import defaults
from mitoseg_tf.errors import USER_ERRORS, error_message


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, False, empty)."""

    def _get_help_string(self, action):
        if action.default in (None, False, (), []) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every ``mitoseg`` parser and sub-parser (argparse makes sub-parsers of the parent's class)."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


# What may vary between machines or runs of one recipe; everything else is the recipe's.
RECIPE_OVERRIDES = (
    "data_dir",
    "output_dir",
    "run_name",
    "budget_minutes",
    "seed",
    "tensorboard",
    "prepared_dir",
    "strategy",
    "resume",
    "deterministic",
)


def _train_defaults():
    sub = Parser().add_subparsers(dest="command")
    _add_train(sub)
    return vars(sub.choices["train"].parse_args([]))


def _add_train(sub):
    from mitoseg_tf.config import RunConfig

    d = RunConfig()
    p = sub.add_parser(
        "train",
        help="train a zoo model (default: MCSA-Unet on the built-in synthetic set)",
        description="Train a zoo model and write a run folder (best.keras, metrics.md, detection.json, ...). "
        f"The default width (--base-filters {d.base_filters}) trains in minutes on a CPU; the paper's networks "
        "use --base-filters 64.",
    )
    p.add_argument("--model", default=d.model, help="registered model name (see `mitoseg models`)")
    p.add_argument(
        "--data", default=d.data, help="data source: synthetic, synthetic_tfds or a dataset of `mitoseg datasets list`"
    )
    p.add_argument("--data-dir", default=d.data_dir, help="where data sources read or prepare their files")
    _add_dataset_options(p)
    p.add_argument("--stain-normalise", action="store_true", help="H&E stain normalisation of every image")
    p.add_argument(
        "--base-filters",
        type=int,
        default=d.base_filters,
        help="width of the first level (the paper's networks: 64, 16 times the computation)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per batch")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="side of the square training crops")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam learning rate")
    p.add_argument(
        "--loss", default=d.loss, help="ce (paper; the default), dice, ce_dice or focal; detectors use their own"
    )
    p.add_argument("--precision", default=d.precision, help="auto, float32, mixed_bfloat16 or mixed_float16")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, data order and augmentation")
    p.add_argument("--output-dir", default=d.output_dir, help="parent folder of the run folder")
    p.add_argument("--run-name", default=None, help="run folder name (default: model and time)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--budget-minutes", type=float, default=None, help="stop before training time exceeds this")
    p.add_argument(
        "--recipe",
        default=None,
        help="a YAML recipe (e.g. zoo/recipes/monuseg_unet.yaml); "
        f"only {', '.join('--' + k.replace('_', '-') for k in RECIPE_OVERRIDES)} may be given with it",
    )
    p.add_argument("--num-examples", type=int, default=None, help=argparse.SUPPRESS)  # tiles per split, for tests
    p.add_argument(
        "--strategy", default=d.strategy, help="none, mirrored (all local devices) or multi_worker (TF_CONFIG)"
    )
    p.add_argument("--resume", action="store_true", help="continue --run-name after an interruption")
    p.add_argument(
        "--init-weights",
        default=d.init_weights,
        help="start from these weights: a shipped tag (e.g. mitosis) or a .weights.h5 file",
    )
    p.add_argument("--tta", action="store_true", help="detection: choose thresholds and score on 8-fold averaged maps")
    p.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=d.deterministic,
        help="TensorFlow op determinism (bitwise-reproducible runs)",
    )


def _add_dataset_options(p):
    p.add_argument("--radius-um", type=float, default=None, help="disk radius (microns) for point-labelled datasets")
    p.add_argument("--refine-masks", action="store_true", help="keep only hematoxylin-dense pixels in the disks")
    p.add_argument("--prepared-dir", default=None, help="where the dataset's TFDS records are written")


def _dataset_options(args):
    """Builder options given on the command line (only for the public datasets)."""
    options = {}
    if args.radius_um is not None:
        options["radius_um"] = args.radius_um
    if args.refine_masks:
        options["refine"] = True
    if args.prepared_dir is not None:
        options["prepared_dir"] = args.prepared_dir
    if options and args.data in ("synthetic", "synthetic_tfds"):
        raise ValueError(
            f"--radius-um/--refine-masks/--prepared-dir apply to the public datasets, not to {args.data!r}."
        )
    return options


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score a checkpoint on a data split and print the metrics table")
    p.add_argument("checkpoint", help="a .keras file, e.g. runs/NAME/best.keras")
    p.add_argument("--data", default="synthetic", help="data source: synthetic or a dataset of `mitoseg datasets list`")
    p.add_argument("--data-dir", default=None, help="the dataset's folder")
    p.add_argument("--split", default="test", help="split to score: train, validation or test")
    p.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass (memory, not results)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic set (must match training's)")
    p.add_argument("--num-examples", type=int, default=None, help=argparse.SUPPRESS)  # tiles, for tests
    _add_dataset_options(p)
    p.add_argument("--recipe", default=None, help="take the data, its options and splits from this training recipe")
    p.add_argument(
        "--whole-images",
        action="store_true",
        help="score whole images predicted by sliding window (default: the evaluation tiles)",
    )
    p.add_argument(
        "--match-distance-um",
        type=float,
        default=defaults.DEFAULT_MATCH_DISTANCE_UM,
        help="detection: match radius in microns",
    )
    p.add_argument("--mpp", type=float, default=None, help="detection: microns per pixel if the data lacks it")
    p.add_argument(
        "--out",
        default=None,
        help="folder for one picture per image: true positives, false positives "
        "and missed figures at the run's detection settings (NAME_evaluation.png)",
    )


def _add_models(sub):
    p = sub.add_parser("models", help="list the registered models with parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'unet*'")
    p.add_argument("--no-params", action="store_true", help="leave the parameter column empty")


def _add_weights(sub):
    p = sub.add_parser("weights", help="list the trained weights shipped with the package: task, data, scores, licence")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard on MODEL/TAG, e.g. 'unet/*'")


def _add_export(sub):
    p = sub.add_parser(
        "export", help="write a checkpoint as a SavedModel that serves images of any size, whole or tiled"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a .keras file, e.g. runs/NAME/best.keras")
    source.add_argument("--weights", help="weights shipped with the package, MODEL/TAG, e.g. unet/mitosis")
    p.add_argument("--out", required=True, help="folder for the SavedModel")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability above which the mask is 1 (default: the pixel threshold of the run's detection.json "
        "or the shipped weights' card, else 0.5)",
    )
    p.add_argument(
        "--tile", type=int, default=defaults.DEFAULT_WINDOW_TILE, help="tile side of the serving_tiled signature"
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=defaults.DEFAULT_WINDOW_OVERLAP,
        help="tile overlap (fraction) of serving_tiled",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average every signature over the 8 flips / quarter turns (8x slower; default: as the run's "
        "detection.json or the shipped weights' card say, else off)",
    )
    p.add_argument(
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include the figure classifier shipped with the weights (default: when one ships)",
    )
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")


def _subcommand_modules():
    """Subcommands that live in their own module (``add_parser`` / ``run``)."""
    from mitoseg_tf.cli import compare, datasets, predict, slide

    return {"datasets": datasets, "predict": predict, "compare": compare, "slide": slide}


VERBOSE_HELP = "let TensorFlow print its start-up and device logs; print the traceback of an error"


def parser():
    p = Parser(prog="mitoseg", description=__doc__.split("\n")[0])
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_models(sub)
    _add_weights(sub)
    _add_export(sub)
    for module in _subcommand_modules().values():
        module.add_parser(sub)
    _accept_verbose_after_the_command(p)
    return p


def _accept_verbose_after_the_command(parser):
    """``mitoseg train --verbose`` as well as ``mitoseg --verbose train``, on every sub-command level."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                if "--verbose" not in subparser._option_string_actions:
                    # SUPPRESS: not given here leaves the top level's value in place
                    subparser.add_argument(
                        "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
                    )
                _accept_verbose_after_the_command(subparser)


def _recipe_config(args, parser_defaults):
    from mitoseg_tf.training.run import load_recipe

    given = {k for k, v in vars(args).items() if k in parser_defaults and v != parser_defaults[k]}
    conflicting = sorted(given - set(RECIPE_OVERRIDES) - {"recipe", "command"})
    if conflicting:
        flags = ", ".join("--" + k.replace("_", "-") for k in conflicting)
        raise ValueError(f"--recipe fixes the training options; remove {flags} or edit the recipe.")
    overrides = {k: getattr(args, k) for k in RECIPE_OVERRIDES if k in given}
    prepared_dir = overrides.pop("prepared_dir", None)
    config = load_recipe(args.recipe, **overrides)
    if prepared_dir:
        config.data_options = {**config.data_options, "prepared_dir": prepared_dir}
    return config


def _train(args):
    from mitoseg_tf.training.run import RunConfig, train_run

    if args.recipe:
        train_run(_recipe_config(args, _train_defaults()))
        return
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
        data_options=_dataset_options(args),
        stain_normalise=args.stain_normalise,
        budget_minutes=args.budget_minutes,
        strategy=args.strategy,
        resume=args.resume,
        deterministic=args.deterministic,
        init_weights=args.init_weights,
        tta=args.tta,
    )
    train_run(config)


def _evaluate(args):
    from mitoseg_tf.cli.predict import check_window_options
    from mitoseg_tf.data.sources import check_source, load_source, make_data
    from mitoseg_tf.detection.evaluation import detection_for_checkpoint
    from mitoseg_tf.detector.files import check_out_dir
    from mitoseg_tf.inference.resample import check_mpp
    from mitoseg_tf.models.outputs import output_roles
    from mitoseg_tf.training import evaluate, format_table
    from mitoseg_tf.training.evaluate import evaluate_whole_images
    from mitoseg_tf.zoo.checkpoint import load_checkpoint

    options = _dataset_options(args)
    if args.recipe:  # score on exactly the split the recipe trained and validated on
        from mitoseg_tf.training.run import load_recipe

        recipe = load_recipe(args.recipe)
        args.data, args.data_dir = recipe.data, args.data_dir or recipe.data_dir
        options = {**recipe.data_options, **options}
    check_source(args.data)
    check_window_options(args)
    if args.mpp is not None:
        check_mpp(args.mpp, "--mpp")
    if args.out:
        check_out_dir(args.out, option="--out")
    model = load_checkpoint(args.checkpoint)
    data = make_data(
        args.data,
        args.split,
        training=False,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        seed=args.seed,
        roles=output_roles(model),
        num_examples=args.num_examples,
        **options,
    )
    # Detection, and --whole-images, score whole images (sliding window) rather than tiles.
    source = load_source(
        args.data, args.split, data_dir=args.data_dir, num_examples=args.num_examples, seed=args.seed, **options
    )
    results = evaluate_whole_images(model, source) if args.whole_images else evaluate(model, data)
    records = [] if args.out else None
    results["detection"] = detection_for_checkpoint(
        model,
        source,
        args.checkpoint,
        data=args.data,
        mpp=args.mpp,
        match_distance_um=args.match_distance_um,
        records=records,
    )
    print(format_table(results, title=f"{model.name} on {args.data}/{args.split}"))
    if args.out:
        written = write_evaluation_pictures(source, records, results["detection"]["score_threshold"], args.out)
        print(f"{len(written)} picture(s) of true positives, false positives and missed figures in {args.out}")


def write_evaluation_pictures(source, records, score_threshold, out_dir):
    """``NAME_evaluation.png`` per image of ``source``: its detections at ``score_threshold`` matched to the truth.

    ``records``: ``collect_detections``' per-image (predicted centres, scores,
    true centres, match distance in px), in the order of ``source``. Returns the paths.
    """
    import numpy as np
    from PIL import Image

    from mitoseg_tf.detection.drawing import draw_evaluation
    from mitoseg_tf.detection.matching import match_points

    os.makedirs(out_dir, exist_ok=True)
    examples = source.as_numpy_iterator() if hasattr(source, "as_numpy_iterator") else iter(source)
    paths = []
    for index, (example, (centres, scores, truth, max_distance)) in enumerate(zip(examples, records)):
        kept = np.asarray(centres).reshape(-1, 2)[np.asarray(scores) >= score_threshold]
        pairs, false_positives, missed = match_points(kept, truth, max_distance)
        picture = draw_evaluation(
            example["image"], kept[[p for p, _ in pairs]], kept[false_positives], np.asarray(truth)[missed]
        )
        name = example.get("id", b"") if isinstance(example, dict) else b""
        name = (name.decode() if isinstance(name, bytes) else str(name)) or f"image{index:03d}"
        paths.append(os.path.join(out_dir, f"{os.path.basename(name)}_evaluation.png"))
        Image.fromarray(picture).save(paths[-1])
    return paths


def _models(args):
    from mitoseg_tf.zoo import get_card, list_models

    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"No registered model matches {args.pattern!r}; registered: {', '.join(list_models())}.")
    print("| model | parameters (paper defaults) | summary |")
    print("|---|---|---|")
    for name in names:
        # Counts stored on the card: building the 30-60 M-parameter defaults took most of a minute.
        count = get_card(name).parameters
        params = "-" if args.no_params or count is None else f"{count:,}"
        print(f"| {name} | {params} | {get_card(name).summary} |")


def _detection_text(detection, split="validation"):
    """ "F1 0.698 at 5 um (0.667 with each field's size and score thresholds chosen on the others)", or None.

    Only those two thresholds are held out by ``calibrate``; the pixel threshold, the epoch and any
    classifier choice saw every field, so the line does not call the number held out."""
    scores = (detection or {}).get(split) or {}
    radius = "5um" if "5um" in scores else next(iter(scores), None)
    first = scores.get(radius)
    if not first or "f1" not in first:
        return None
    text = f"F1 {first['f1']:.3f} at {radius.replace('um', ' um')}"
    held_out = (detection.get(f"{split}_held_out") or {}).get("f1")
    return text + (
        f" ({held_out:.3f} with each field's size and score thresholds chosen on the others)"
        if held_out is not None
        else ""
    )


def _dice_text(card):
    """ "nucleus Dice 0.836, Mean Dice 0.894 (pooled, whole images)": the names the model cards and README use."""
    target = f"{card.object_class.lower()} Dice"
    whole = card.validation_whole_images or {}
    if (whole.get("mean_dice") or {}).get("pooled") is not None:
        scores, where = {k: (v or {}).get("pooled") for k, v in whole.items()}, "pooled, whole images"
        foreground = scores.get("foreground_dice")
    else:
        scores, where = (card.validation or {}).get("pooled") or {}, "pooled, tiles"
        foreground = scores.get("mitosis_dice")  # the foreground class's key, whichever class it is
    if scores.get("mean_dice") is None:
        return None
    text = f"{target} {foreground:.3f}, " if foreground is not None else ""
    return f"{text}Mean Dice {scores['mean_dice']:.3f} ({where})"


def _validation_text(card):
    """The card's headline validation numbers: detection F1 for detectors, Dice otherwise."""
    parts = []
    alone = _detection_text(card.detection)
    if alone:
        parts.append(f"detection {alone}" + (" (network alone)" if card.rescorer else ""))
    if card.rescorer and _detection_text(card.rescorer.detection):
        parts.append(f"with the figure classifier {_detection_text(card.rescorer.detection)}")
    if not parts:  # a detector's tile Dice says little next to its F1
        parts.append(_dice_text(card) or "not recorded")
    return "; ".join(parts)


def _test_text(card):
    """The test split's numbers at the settings chosen on validation (the default detector's first), or None."""
    parts = []
    if card.rescorer and _detection_text(card.rescorer.detection, "test"):
        parts.append(f"detection {_detection_text(card.rescorer.detection, 'test')} (the default, figure classifier)")
    alone = _detection_text(card.detection, "test")
    if alone:
        parts.append(f"detection {alone}" + (" (network alone)" if card.rescorer else ""))
    scores, target = (card.test or {}).get("pooled") or {}, card.object_class.lower()
    named = ((f"{target}_dice", f"{target} Dice"), ("mean_dice", "Mean Dice"))
    dice = [f"{label} {scores[key]:.3f}" for key, label in named if scores.get(key) is not None]
    if dice:
        parts.append(", ".join(dice) + " (pooled, tiles)")
    return "; ".join(parts) or None


def _weights(args):
    import fnmatch

    from mitoseg_tf.zoo.measured import METRIC_NAMES
    from mitoseg_tf.zoo.weights_card import shipped_cards

    cards = shipped_cards()
    keys = [key for key in cards if fnmatch.fnmatchcase(key, args.pattern)]
    if not keys:
        raise ValueError(f"No shipped weights match {args.pattern!r}; shipped: {', '.join(cards) or 'none'}.")
    # One block per weights: the data and licence texts are sentences, too long for table cells.
    for key in keys:
        card = cards[key]
        print(f"{key}: {card.task}")
        print(f"  class:       {card.object_class} (what mitoseg predict counts and writes to GeoJSON)")
        print(f"  trained on:  {card.data}")
        test = _test_text(card)
        if test:  # first: the number no setting was chosen on
            print(f"  test:        {test}")
        print(f"  validation:  {_validation_text(card)}")
        if card.chosen_by:
            print(f"  chosen by:   {card.chosen_by}")
        if card.rescorer:
            print(f"  second stage: figure classifier on {card.rescorer.window}-px windows (mitoseg predict uses it)")
        print(f"  licence:     {card.licence}")
        for number, terms in enumerate(card.data_licences):  # each training set's own conditions
            print(f"  {'' if number else 'data terms:':<13}{terms.source}: {terms.terms}")
        print()
    print(f"Metric names as on the model cards (zoo/*.md) and in README: {METRIC_NAMES}")
    print("Use: mitoseg predict IMAGES --weights MODEL/TAG --out DIR, or build(MODEL, weights=TAG) in Python.")


def _export(args):
    from mitoseg_tf.cli.predict import check_window_options
    from mitoseg_tf.detector import Detector

    check_window_options(args)

    detector = Detector.load(
        checkpoint=args.checkpoint,
        weights=args.weights,
        rescore=args.rescore,
        tta=args.tta,
        pixel_threshold=args.threshold,
        tile=args.tile,
        overlap=args.overlap,
    )
    written = detector.export(args.out, overwrite=args.overwrite)
    print(f"SavedModel of {written['name']} written to {written['out_dir']} in {written['seconds']:g} s")
    print("What serving_figures does, in this order (mitoseg predict does the same):")
    for number, step in enumerate(written["settings"], 1):
        print(f"  {number}. {step['step']}")
    print(f"Signatures: {', '.join(written['signatures'])}; model card: {written['card']}")


USER_ERROR_STATUS = 2
INTERNAL_ERROR_STATUS = 3
INTERRUPTED_STATUS = 130  # as a shell reports a Ctrl-C


def _error_line(command, err):
    if isinstance(err, USER_ERRORS):
        return f"mitoseg {command}: error: {error_message(err)}"
    return f"mitoseg {command}: internal error: {error_message(err)} (run with --verbose for the traceback)"


def main(argv=None):
    args = parser().parse_args(argv)
    if args.verbose:
        _quiet.verbose()
    handlers = {"train": _train, "evaluate": _evaluate, "models": _models, "weights": _weights, "export": _export}
    handler = handlers.get(args.command) or _subcommand_modules()[args.command].run
    try:
        code = handler(args)
    except KeyboardInterrupt:
        print(f"mitoseg {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except Exception as err:  # noqa: BLE001 - the one place every error becomes a line and a status
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(_error_line(args.command, err), file=sys.stderr)
        return USER_ERROR_STATUS if isinstance(err, USER_ERRORS) else INTERNAL_ERROR_STATUS
    # A command over many files returns 1 when some failed and the others finished.
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
