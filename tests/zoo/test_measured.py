"""zoo/measured.json entries come from run folders through mitoseg_tf.zoo.measured, not from typing."""

import json
import os
import shutil

import pytest

from mitoseg_tf.zoo import measured

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "mcsa_unet_synthetic_defaults")
MEASURED = os.path.join(HERE, "..", "..", "zoo", "measured.json")


def _shipped():
    with open(MEASURED) as fh:
        return json.load(fh)


def test_the_script_reproduces_the_synthetic_mcsa_unet_entry_from_its_run_folder():
    model, entry = measured.entry_from_run(
        FIXTURE, data="synthetic (built-in, test split, 48 tiles 256 px)", note="2-core CPU", date="2026-11-26"
    )
    shipped = next(e for e in _shipped()["mcsa_unet"] if e["data"].startswith("synthetic"))
    assert model == "mcsa_unet"
    assert entry.pop("run") == "mcsa_unet_synthetic_defaults"
    assert entry == {k: v for k, v in shipped.items() if k != "source"}
    # typed from the card, not from the fixture: the test split, not validation (0.770)
    assert entry["metrics"]["mitosis Dice (pooled)"] == 0.779


def test_every_entry_is_generated_or_says_how_it_was_made():
    for model, entries in _shipped().items():
        for entry in entries:
            assert entry.get("run") or len(entry.get("source", "")) > 20, (model, entry["data"])
            assert all(isinstance(v, (int, float)) for v in entry["metrics"].values()), model


def _run_folder(tmp_path, name="unet-mitosis", **changes):
    run = tmp_path / name
    shutil.copytree(FIXTURE, run)
    for file, values in changes.items():
        path = run / file
        record = json.loads(path.read_text())
        record.update(values)
        path.write_text(json.dumps(record))
    return run


def test_a_recipe_run_with_detection_and_no_test_split(tmp_path):
    detection = {
        "tta": True,
        "validation_by_distance": {
            "5um": {"f1": 0.69804, "precision": 0.7097, "recall": 0.6875},
            "8um": {"f1": 0.7012},
        },
        "validation_held_out": {"f1": 0.6451},
    }
    run = _run_folder(
        tmp_path,
        **{
            "config.json": {
                "model": "unet",
                "data": "mixture",
                "recipe": "zoo/recipes/mitosis_unet.yaml",
                "epochs": 29,
                "steps_per_epoch": 250,
                "loss": "ce_dice",
            },
            "metrics.json": {"model": "unet", "detection": detection, "test": None, "train_seconds": 2604.0},
        },
    )
    (run / "history.csv").write_text("epoch,loss\n" + "".join(f"{i},0.1\n" for i in range(29)))
    model, entry = measured.entry_from_run(str(run), date="2026-11-30")
    assert model == "unet" and entry["data"] == "mixture (validation split)"
    assert entry["schedule"] == (
        "zoo/recipes/mitosis_unet.yaml recipe: base_filters 16, 29 x 250 steps, batch 16, 128 px crops, ce_dice, "
        "mixed_bfloat16, 43.4 min"
    )
    assert entry["metrics"] == {
        "detection F1 (5 um, 8-fold TTA maps)": 0.698,
        "detection precision (5 um, 8-fold TTA maps)": 0.71,
        "detection recall (5 um, 8-fold TTA maps)": 0.688,
        "detection F1 (8 um, 8-fold TTA maps)": 0.701,
        "detection F1 (5 um, each field's size and score thresholds chosen on the others)": 0.645,
        "mitosis Dice (pooled)": 0.770,  # the fixture's validation split
        "Mean Dice (pooled)": 0.881,
        "paper MPA (pooled)": 0.901,
        "MIoU (pooled)": 0.805,
        "MPA standard (pooled)": 0.866,
    }


def test_a_budget_stop_reports_the_epochs_run_and_nuclei_get_per_image_dice(tmp_path):
    run = _run_folder(tmp_path, **{"config.json": {"data": "monuseg", "epochs": 80, "steps_per_epoch": 25}})
    (run / "history.csv").write_text("epoch,loss\n" + "".join(f"{i},0.1\n" for i in range(60)))
    _, entry = measured.entry_from_run(str(run), date="2026-11-26")
    assert "60 x 25 steps" in entry["schedule"] and "defaults" not in entry["schedule"]
    assert entry["metrics"]["nucleus Dice (pooled)"] == 0.779
    assert entry["metrics"]["nucleus Dice (per image)"] == 0.740


def test_the_command_adds_an_entry_and_replaces_it_when_the_run_is_measured_again(tmp_path):
    out = tmp_path / "measured.json"
    out.write_text(
        json.dumps({"unet": [{"data": "x", "schedule": "y", "metrics": {"a": 1}, "date": "d", "source": "by hand"}]})
    )
    run = _run_folder(tmp_path, name="run-a")
    assert measured.main(["--runs", str(run), "--out", str(out), "--date", "2026-01-01"]) == 0
    assert measured.main(["--runs", str(run), "--out", str(out), "--date", "2026-01-02", "--note", "8-core CPU"]) == 0
    written = json.loads(out.read_text())
    assert len(written["unet"]) == 1 and [e["date"] for e in written["mcsa_unet"]] == ["2026-01-02"]
    assert written["mcsa_unet"][0]["schedule"].endswith("mixed_bfloat16, 8-core CPU, 5.3 min")


def test_a_missing_metrics_file_is_an_error_not_an_empty_entry(tmp_path):
    run = _run_folder(tmp_path)
    os.remove(run / "metrics.json")
    with pytest.raises(FileNotFoundError):
        measured.entry_from_run(str(run))
