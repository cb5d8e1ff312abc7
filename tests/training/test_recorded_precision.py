"""Recipes behind shipped weights record the precision they ran in; a rerun in another one says so."""

import json
import os

import pytest

from mitoseg_tf.training.run import RunConfig, load_recipe, recorded_precision_warning, train_run

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MANIFEST = os.path.join(ROOT, "mitoseg_tf", "zoo", "weights", "manifest.json")


def _shipped():
    with open(MANIFEST) as fh:
        return json.load(fh)


def test_every_recipe_behind_shipped_weights_records_the_weights_precision():
    shipped = _shipped()
    assert shipped  # an empty manifest would make the loop below vacuous
    for tag, entry in shipped.items():
        config = load_recipe(os.path.join(ROOT, entry["recipe"]))
        assert config.precision_recorded == entry["precision"], tag
        assert config.precision_recorded in ("float32", "mixed_bfloat16", "mixed_float16"), tag


def test_the_warning_names_both_precisions_and_the_recipe():
    config = RunConfig(recipe="zoo/recipes/monuseg_unet.yaml", precision_recorded="mixed_bfloat16")
    text = recorded_precision_warning(config, "float32")
    assert "zoo/recipes/monuseg_unet.yaml" in text and "mixed_bfloat16" in text and "float32" in text
    assert recorded_precision_warning(config, "mixed_bfloat16") is None
    assert recorded_precision_warning(RunConfig(), "float32") is None  # nothing recorded: nothing to compare


class _Built(Exception):
    """Raised by the test's log once the model is built: the warning and config.json come before it."""


def test_a_training_run_in_another_precision_prints_the_warning(tmp_path):
    # train_run itself, stopped once it has built the model: the warning and config.json come before that,
    # and training a step would add ~25 s of tracing that says nothing about precision. The no-warning
    # case is the unit test above.
    resolved, warned = "float32", True
    lines = []

    def log(*parts):
        lines.append(" ".join(map(str, parts)))
        if lines[-1].startswith("Model unet:"):
            raise _Built

    config = RunConfig(
        model="unet",
        base_filters=4,
        epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        crop_size=32,
        num_examples=4,
        precision=resolved,
        precision_recorded="mixed_bfloat16",
        output_dir=str(tmp_path),
        run_name="r",
        detection=False,
        num_overlays=1,
        recipe="zoo/recipes/monuseg_unet.yaml",
    )
    with pytest.raises(_Built):
        train_run(config, log=log)
    warnings = [ln for ln in lines if ln.startswith("Warning:") and "recorded its results in mixed_bfloat16" in ln]
    assert len(warnings) == int(warned), lines[:5]
    with open(tmp_path / "r" / "config.json") as fh:
        record = json.load(fh)
    assert (record["precision_recorded"], record["resolved_precision"]) == ("mixed_bfloat16", resolved)
