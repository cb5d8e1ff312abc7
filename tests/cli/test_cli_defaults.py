"""Every option default of every ``mitoseg`` command is the library's, so the two cannot drift apart.

Each option is either mapped to the library parameter or field it feeds (and the two
defaults must be equal), or listed in ``NOT_IN_THE_LIBRARY`` with the reason it has
no library counterpart. A new option that is in neither table fails the test, so it
gets a decision rather than a copied number.
"""

import argparse
import dataclasses
import inspect

import pytest

from mitoseg_tf.cli.main import RECIPE_OVERRIDES, parser
from mitoseg_tf.cli.slide import LIBRARY_DEFAULTS


def _subparsers(p, prefix=()):
    yield prefix, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, prefix + (name,))


def _cli_defaults():
    """``{(command..., dest): default}`` of every option and optional positional of every command."""
    found = {}
    for path, p in _subparsers(parser()):
        if not path:
            continue
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.dest == "verbose":
                continue
            if not action.option_strings and action.nargs != "?":
                continue  # a required positional has no default
            if action.required:
                continue
            found[path + (action.dest,)] = action.default
    return found


def _parameter(function, name):
    default = inspect.signature(function).parameters[name].default
    assert default is not inspect.Parameter.empty, f"{function.__qualname__}({name}) has no default"
    return default


def _field(config_class, name):
    return {f.name: f for f in dataclasses.fields(config_class)}[name].default


def _library_defaults():
    """``{(command..., dest): (library default, where it is)}`` for every option that feeds the library."""
    from mitoseg_tf.compare.recipe import run_recipe_compare
    from mitoseg_tf.compare.shipping import ship_comparison
    from mitoseg_tf.config import CompareConfig, RunConfig
    from mitoseg_tf.data.inspection import summarise
    from mitoseg_tf.data.sources import load_source
    from mitoseg_tf.detection.evaluation import collect_detections
    from mitoseg_tf.detector import Detector
    from mitoseg_tf.detector.files import predict_files
    from mitoseg_tf.export.detector import export_detector
    from mitoseg_tf.slides.predict import predict_slide
    from mitoseg_tf.zoo import list_models

    table = {}

    def put(command, dest, value, where):
        table[(*command, dest)] = (value, where)

    run = RunConfig()
    for dest in (f.name for f in dataclasses.fields(RunConfig)):
        put(("train",), dest, getattr(run, dest), f"RunConfig.{dest}")

    detector_init = Detector.__init__
    for command in (("predict",), ("slide",), ("export",)):
        put(command, "batch_size", _parameter(detector_init, "batch_size"), "Detector(batch_size)")
        if command != ("export",):  # an export is a SavedModel: TensorFlow runs it
            put(command, "runtime", _parameter(detector_init, "runtime"), "Detector(runtime)")
        # None: Detector.load takes the card's or run's setting (DetectionSettings.from_dict).
        for dest in ("tta", "rescore", "threshold", "score_threshold", "min_area_um2", "checkpoint", "weights"):
            put(command, dest, None, "Detector.load: the card's or run's setting")
    for command in (("predict",), ("export",)):
        put(command, "tile", _parameter(detector_init, "tile"), "Detector(tile)")
        put(command, "overlap", _parameter(detector_init, "overlap"), "Detector(overlap)")
    put(("export",), "overwrite", _parameter(export_detector, "overwrite"), "export_detector(overwrite)")

    for dest in ("mpp", "hpf10_area_mm2", "progress"):
        put(("predict",), dest, _parameter(predict_files, dest), f"predict_files({dest})")

    for dest in ("mpp", "resume", "tile", "margin", "hotspot_shape", "hotspots", "tissue_mpp", "prefetch"):
        put(("slide",), dest, _parameter(predict_slide, dest), f"predict_slide({dest})")
    for dest in ("progress", "state_every_s", "hpf10_area_mm2", "field_diameter_mm", "hotspot_fields"):
        put(("slide",), dest, _parameter(predict_slide, dest), f"predict_slide({dest})")

    put(("evaluate",), "data", _parameter(load_source, "name"), "load_source(name)")
    put(("evaluate",), "seed", run.seed, "RunConfig.seed (the synthetic set training saw)")
    put(("evaluate",), "data_dir", _parameter(load_source, "data_dir"), "load_source(data_dir)")
    put(("evaluate",), "num_examples", _parameter(load_source, "num_examples"), "load_source(num_examples)")
    # evaluate_detection hands it on to collect_detections (**kwargs).
    put(
        ("evaluate",),
        "match_distance_um",
        _parameter(collect_detections, "match_distance_um"),
        "collect_detections(match_distance_um)",
    )

    compare = CompareConfig()
    for dest in (f.name for f in dataclasses.fields(CompareConfig)):
        put(("compare",), "out" if dest == "output_dir" else dest, getattr(compare, dest), f"CompareConfig.{dest}")
    put(("compare",), "records", _parameter(run_recipe_compare, "records_dir"), "run_recipe_compare(records_dir)")
    put(("compare",), "max_runs", _parameter(run_recipe_compare, "max_runs"), "run_recipe_compare(max_runs)")
    put(("compare",), "weights_dir", _parameter(ship_comparison, "weights_dir"), "ship_comparison(weights_dir)")

    put(("models",), "pattern", _parameter(list_models, "pattern"), "list_models(pattern)")
    put(("datasets", "inspect"), "max_images", _parameter(summarise, "max_images"), "summarise(max_images)")
    for action in ("inspect", "prepare"):
        put(("datasets", action), "refine_masks", _parameter(summarise, "refine"), "summarise(refine)")
    return table


# Options that feed no library parameter with a default of its own, and why.
NOT_IN_THE_LIBRARY = {
    ("train", "recipe"): "chooses a file; RunConfig.recipe only records it",
    ("train", "radius_um"): "given only when set: each dataset format has its own disk radius",
    ("train", "refine_masks"): "given only when set (a builder option)",
    ("train", "prepared_dir"): "given only when set (a builder option)",
    ("evaluate", "split"): "the command scores the test split; the library has no split to default to",
    ("evaluate", "batch_size"): "make_data requires a batch size: memory, not results",
    ("evaluate", "radius_um"): "given only when set: each dataset format has its own disk radius",
    ("evaluate", "refine_masks"): "given only when set (a builder option)",
    ("evaluate", "prepared_dir"): "given only when set (a builder option)",
    ("evaluate", "recipe"): "chooses a file",
    ("evaluate", "whole_images"): "chooses between two library functions",
    ("evaluate", "mpp"): "None: the data's own pixel size (detection_for_checkpoint(mpp=None))",
    ("evaluate", "out"): "None: no pictures",
    ("models", "no_params"): "how the listing looks; the cards hold the counts either way",
    ("weights", "pattern"): "a wildcard over shipped_cards()'s keys; the library has no pattern",
    ("compare", "recipe"): "chooses a file",
    ("compare", "report"): "chooses between two library functions",
    ("compare", "ship"): "None: no shipping; given, it is ship_comparison's tag, which has no default",
    ("datasets", "inspect", "out"): "None: NAME_samples.png, a file name only the command makes",
    ("datasets", "inspect", "radius_um"): "given only when set: each dataset format has its own disk radius",
    ("datasets", "prepare", "radius_um"): "given only when set: each dataset format has its own disk radius",
    ("datasets", "prepare", "prepared_dir"): "given only when set (a builder option)",
    ("slide", "hotspot_min_tissue"): "None: passed only when given (cli.slide.LIBRARY_DEFAULTS); checked below",
}


@pytest.fixture(scope="module")
def library():
    return _library_defaults()


def test_every_cli_default_is_the_librarys(library):
    cli = _cli_defaults()
    unmapped = sorted(" ".join(key) for key in cli if key not in library and key not in NOT_IN_THE_LIBRARY)
    assert not unmapped, f"options with no library default to compare with (map them or say why not): {unmapped}"
    different = [
        f"mitoseg {' '.join(key[:-1])} --{key[-1].replace('_', '-')}: {cli[key]!r} but {where} is {value!r}"
        for key, (value, where) in library.items()
        if key in cli and cli[key] != value
    ]
    assert not different, "\n".join(different)
    stale = sorted(" ".join(key) for key in NOT_IN_THE_LIBRARY if key not in cli)
    assert not stale, f"NOT_IN_THE_LIBRARY names options that no longer exist: {stale}"


def test_the_defaults_that_mean_the_librarys_own_are_none_and_passed_only_when_given():
    from mitoseg_tf.defaults import DEFAULT_HOTSPOT_MIN_TISSUE
    from mitoseg_tf.slides.predict import predict_slide

    cli = _cli_defaults()
    for dest in LIBRARY_DEFAULTS:
        assert cli[("slide", dest)] is None, dest
    assert _parameter(predict_slide, "hotspot_min_tissue") == DEFAULT_HOTSPOT_MIN_TISSUE
    slide_help = dict(_subparsers(parser()))[("slide",)].format_help()
    assert f"(default: {DEFAULT_HOTSPOT_MIN_TISSUE:g})" in " ".join(slide_help.split())


def test_train_recipe_overrides_are_run_config_fields():
    from mitoseg_tf.config import RunConfig

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(RECIPE_OVERRIDES) - {"prepared_dir"} <= fields
