"""``mitoseg compare --recipe``: runs recorded in a folder, skipped when recorded, reported when changed;
``--report`` rebuilds the tables and the paired test from records alone."""

import dataclasses
import math
import os

import numpy as np
import pytest

from mitoseg_tf.cli.main import main
from mitoseg_tf.compare import records as records_lib

TINY_RECIPE = """\
model: unet
data: synthetic
num_examples: 1
base_filters: 4
crop_size: 32
batch_size: 2
epochs: 1
steps_per_epoch: 1
eval_tile: 128
precision: float32
loss: ce_dice
compare:
  models: [unet, mcsa_unet]
  seeds: [0]
  figure_tiles: 1
  measured_on: {validation: "the tiny validation split", test: "the tiny test split"}
"""


def test_recipe_runs_are_recorded_then_skipped_and_a_changed_recipe_is_reported(tmp_path, capsys, monkeypatch):
    import mitoseg_tf.training as training
    from mitoseg_tf.compare.recipe import run_recipe_compare

    compile_model = training.compile_model

    def compile_eagerly(model, *args, **kwargs):
        # The records, skips and reports are under test, not the graph: tracing the training step of
        # each of the two models cost about half of this test, for its one step (train_run imports
        # compile_model when called, so it gets this one).
        compile_model(model, *args, **kwargs).run_eagerly = True
        return model

    monkeypatch.setattr(training, "compile_model", compile_eagerly)

    recipe, out, records = tmp_path / "tiny.yaml", tmp_path / "runs", tmp_path / "records"
    recipe.write_text(TINY_RECIPE)
    assert main(["compare", "--recipe", str(recipe), "--out", str(out), "--records", str(records)]) == 0
    for model in ("unet", "mcsa_unet"):
        record = records_lib.read_record(records / f"{model}_s0")
        assert record["model"] == model and record["seed"] == 0 and record["config"]["base_filters"] == 4
        assert record["config"]["model"] == model and "output_dir" not in record["config"]
        assert record["seconds_per_step"] > 0 and record["steps"] == 1 and len(record["history"]) == 1
        assert record["machine"]["cpu"] and record["machine"]["cores"] >= 1
        assert set(record["scores"]) == {"validation", "test"} and 0 <= record["scores"]["test"]["mean_dice"] <= 1
        assert record["scores"]["test"]["detection_f1"] == record["detection"]["test"]["f1"]
        assert np.load(records / f"{model}_s0" / "figure.npz")["probability"].dtype == np.uint8
        assert not any(name.endswith(".keras") for name in os.listdir(records / f"{model}_s0"))  # no weights
    assert (records / "report.md").is_file() and (records / "figure5.png").is_file()
    assert "the tiny test split" in (records / "report.md").read_text()
    stamps = {
        p: os.path.getmtime(p) for p in (records / "unet_s0" / "record.json", out / "runs" / "unet_s0" / "best.keras")
    }

    capsys.readouterr()
    assert main(["compare", "--recipe", str(recipe), "--out", str(out), "--records", str(records)]) == 0
    assert "unet seed 0: recorded, not retrained" in capsys.readouterr().out
    assert {p: os.path.getmtime(p) for p in stamps} == stamps  # nothing trained, nothing rewritten

    recipe.write_text(TINY_RECIPE.replace("crop_size: 32", "crop_size: 64"))
    result = run_recipe_compare(str(recipe), output_dir=str(out), records_dir=str(records), log=lambda *a: None)
    assert result["trained"] == [] and result["skipped"] == []
    assert result["changed"][("unet", 0)] == ["crop_size: 32 -> 64"]
    assert main(["compare", "--recipe", str(recipe), "--out", str(out), "--records", str(records)]) == 1
    assert "another config (crop_size: 32 -> 64)" in capsys.readouterr().out
    assert {p: os.path.getmtime(p) for p in stamps} == stamps


def test_recorded_runs_are_skipped_wherever_the_run_folders_go_and_changed_ones_reported(tmp_path, monkeypatch):
    import mitoseg_tf.training.run as run_module
    from mitoseg_tf.compare.recipe import load_compare_recipe, run_recipe_compare

    def refuse(*args, **kwargs):
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr(run_module, "train_run", refuse)
    recipe, records = tmp_path / "tiny.yaml", tmp_path / "records"
    recipe.write_text(TINY_RECIPE)
    plan = load_compare_recipe(str(recipe))
    for model, seed in plan.jobs():
        config = dataclasses.asdict(plan.run_config(model, seed, str(tmp_path / "first")))
        records_lib.write_record(
            str(records / f"{model}_s{seed}"),
            {
                "model": model,
                "seed": seed,
                "config_hash": records_lib.config_hash(config),
                "config": records_lib.hashed_config(config),
            },
        )
    quiet = dict(records_dir=str(records), log=lambda *a: None)
    result = run_recipe_compare(str(recipe), output_dir=str(tmp_path / "elsewhere"), **quiet)
    assert result["skipped"] == [("unet", 0), ("mcsa_unet", 0)] and result["trained"] == result["left"] == []
    recipe.write_text(TINY_RECIPE.replace("batch_size: 2", "batch_size: 4"))
    result = run_recipe_compare(str(recipe), output_dir=str(tmp_path / "elsewhere"), **quiet)
    assert result["skipped"] == [] and result["changed"] == {job: ["batch_size: 2 -> 4"] for job in plan.jobs()}


def test_an_unfinished_run_folder_is_removed_before_its_run_trains_again(tmp_path, monkeypatch):
    # A killed run's folder (config.json, an old metrics.json) must not mix with the retrained run's files.
    import mitoseg_tf.training.run as run_module
    from mitoseg_tf.compare.recipe import run_recipe_compare

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    stale = tmp_path / "out" / "runs" / "unet_s0"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    (stale / "metrics.json").write_text("{}")
    seen = []

    def train_run(config, **kwargs):
        seen.append(os.path.exists(os.path.join(config.output_dir, config.run_name)))
        raise RuntimeError("stopped here")

    monkeypatch.setattr(run_module, "train_run", train_run)
    messages = []
    with pytest.raises(RuntimeError, match="stopped here"):
        run_recipe_compare(
            str(recipe), output_dir=str(tmp_path / "out"), records_dir=str(tmp_path / "records"), log=messages.append
        )
    assert seen == [False] and any("removing" in m and "unet_s0" in m for m in messages)


def test_recipe_fixes_the_training_options(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    assert main(["compare", "--recipe", str(recipe), "--epochs", "3"]) != 0
    assert "remove --epochs" in capsys.readouterr().err


def test_the_atypia_recipe_loads_with_every_table_model():
    from mitoseg_tf.compare.recipe import load_compare_recipe
    from mitoseg_tf.compare.selection import table_models
    from mitoseg_tf.training.run import load_recipe

    recipes = os.path.join(os.path.dirname(__file__), "..", "..", "zoo", "recipes")
    plan = load_compare_recipe(os.path.join(recipes, "compare_atypia.yaml"))
    detector = load_recipe(os.path.join(recipes, "mitosis_v2.yaml"))  # trained like the detector
    for key in ("data", "target_mpp", "augment", "crop_size", "batch_size", "learning_rate", "loss", "eval_tile"):
        assert getattr(plan.base, key) == getattr(detector, key), key
    assert {k: plan.base.data_options[k] for k in ("train", "validation")} == detector.data_options
    assert set(plan.models) == set(table_models("table1")) | set(table_models("table2"))
    assert all(len(plan.seeds[m]) >= (3 if m in ("unet", "mcsa_unet") else 2) for m in plan.models)
    assert plan.base.test_split == "test" and plan.base.data_options["test"]["data_dir"] == "mitos12_dev"
    assert plan.records == "docs/results/compare_atypia"
    # The recipe's ce_dice reaches the segmentation networks; MS R-CNN keeps its own six losses (compile_model
    # refuses a loss for it, so the campaign would otherwise fail when it reached MS R-CNN).
    assert plan.run_config("unet", 0, "out").loss == "ce_dice" and plan.run_config("ms_rcnn", 0, "out").loss is None


# Hand-written records: Mean Dice of U-Net and MCSA-Unet on three seeds.
UNET = [0.70, 0.74, 0.72]
MCSA = [0.75, 0.76, 0.80]


def _write(records, model, seed, dice, recipe_hash="r1"):
    scores = {
        "mean_dice": dice,
        "paper_mpa": dice,
        "miou": dice - 0.1,
        "mpa": dice,
        "mitosis_dice": dice - 0.3,
        "detection_f1": dice - 0.2,
    }
    record = {
        "model": model,
        "seed": seed,
        "config_hash": f"{model}{seed}",
        "recipe_hash": recipe_hash,
        "config": {},
        "seconds_per_step": 1.5,
        "train_seconds": 600.0,
        "parameters": 1000,
        "machine": {"cpu": "Test CPU", "cores": 2},
        "scores": {"test": scores, "validation": {"mean_dice": dice + 0.05}},
        "measured_on": {"test": "mitos12_dev", "validation": "the ATYPIA validation slides"},
    }
    records_lib.write_record(str(records / f"{model}_s{seed}"), record)
    np.savez_compressed(
        records / f"{model}_s{seed}" / "figure.npz",
        spec=np.array([["test", "0", "0", "0", "8", "8"]]),
        probability=np.full((1, 8, 8), 200, np.uint8),
    )


def test_report_from_records_alone_gives_mean_std_and_the_paired_test(tmp_path, monkeypatch):
    records = tmp_path / "records"
    for seed, (unet, mcsa) in enumerate(zip(UNET, MCSA)):
        _write(records, "unet", seed, unet)
        _write(records, "mcsa_unet", seed, mcsa)
    np.savez_compressed(
        records / "figure_tiles.npz",
        spec=np.array([["test", "0", "0", "0", "8", "8"]]),
        images=np.zeros((1, 8, 8, 3), np.uint8),
        masks=np.zeros((1, 8, 8), np.uint8),
    )
    # --report reads records only: nothing may train or predict.
    import mitoseg_tf.training.run as run_module
    from mitoseg_tf.inference import sliding_window

    def refuse(*args, **kwargs):
        raise AssertionError("--report ran a network")

    monkeypatch.setattr(run_module, "train_run", refuse)
    monkeypatch.setattr(sliding_window, "predict_image", refuse)
    assert main(["compare", "--report", "--records", str(records)]) == 0
    report = (records / "report.md").read_text()
    # mean and sample std (ddof 1) by hand: U-Net 0.72 +- 0.02; MCSA-Unet 0.77 +- sqrt(0.0007) = 0.026
    assert "| U-Net | `unet` | 0.720 ± 0.020 |" in report
    assert "| MCSA-Unet | `mcsa_unet` | 0.770 ± 0.026 |" in report
    assert "| - | - | - | `unet` | 0.720 ± 0.020 |" in report  # Table 1 too
    assert "measured on mitos12_dev" in report.lower() and "0.770 ± 0.026" in report
    assert (records / "figure5.png").read_bytes()[:4] == b"\x89PNG"
    # paired t by hand: differences 0.05, 0.02, 0.08 -> mean 0.05, sd 0.03, t = 0.05 / (0.03 / sqrt 3);
    # with 2 degrees of freedom the t distribution's two-sided p is 1 - t / sqrt(2 + t^2).
    t = 0.05 / (0.03 / math.sqrt(3))
    p = 1 - t / math.sqrt(2 + t * t)
    row = next(line for line in report.splitlines() if line.startswith("| test | Mean Dice |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["0, 1, 2", "0.770", "0.720", "0.0500", f"{t:.2f}", f"{p:.3f}", "0.250"]  # sign flip: 2 of 8
    from mitoseg_tf.compare.report import build_report

    result = build_report(str(records), log=lambda *a: None)
    paired = next(r for r in result["paired"] if (r["split"], r["metric"]) == ("test", "mean_dice"))
    assert paired["t"] == pytest.approx(t) and paired["p"] == pytest.approx(p)
    assert result["summaries"]["validation"]["unet"]["mean_dice"][0] == pytest.approx(0.77)

    _write(records, "unet_res", 0, 0.7, recipe_hash="r2")
    messages = []
    build_report(str(records), log=messages.append)
    assert messages and "different recipes" in messages[0] and "unet_res_s0" in messages[0]
