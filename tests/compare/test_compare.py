"""``mitoseg compare``: tables from the card tags, a real tiny comparison under a time budget, resuming."""

import csv
import json
import os

import pytest

from mitoseg_tf.cli.main import main
from mitoseg_tf.compare import CompareConfig, run_compare, table_models
from mitoseg_tf.compare.budget import plan_epochs
from mitoseg_tf.zoo import registry


def test_tables_come_from_card_tags_in_the_papers_order():
    assert table_models("table1") == ["unet", "unet_ca", "unet_sa", "unet_res", "mcsa_unet"]
    table2 = table_models("table2")
    assert table2[0] == "unet" and table2[-1] == "mcsa_unet"
    assert {"res_unet", "unet_plus_plus", "unet_3plus"} <= set(table2)
    with pytest.raises(ValueError, match="table1, table2"):
        table_models("table3")


def test_a_model_registered_later_joins_its_table():
    from mitoseg_tf.models.unet import build_unet

    registry.register("zz_later_net", summary="s", reference="r", tags=("table2",))(build_unet)
    try:
        assert table_models("table2")[-2:] == ["zz_later_net", "mcsa_unet"]
    finally:
        registry._REGISTRY.pop("zz_later_net")


def test_plan_epochs_fills_the_budget():
    # two runs: overheads 7 s and 10 s, 0.1 s and 0.3 s per step, 0.5 s and 1.5 s per epoch besides the steps
    runs = [(7.0, 0.1, 0.5), (10.0, 0.3, 1.5)]
    per_epoch = 20 * 0.4 + 2.0  # 10 s at 20 steps per epoch
    assert plan_epochs(17 + 12 * per_epoch + 1, runs, 20) == (12, 20, 137)
    # not one whole epoch: one epoch with fewer steps (17 + 2 + 5 * 0.4 = 21 s)
    assert plan_epochs(21.05, runs, 20)[:2] == (1, 5)
    assert plan_epochs(1.0, runs, 20)[:2] == (1, 1)  # never zero


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# A budget that measuring the step already spends: the plan cuts to one epoch of one step, the path
# where not one epoch fits. A one-minute budget trained ~a minute of epochs that no assertion needed
# (filling a budget is test_plan_epochs_fills_the_budget's claim).
BUDGET_MINUTES = 0.01


def test_tiny_comparison_writes_tables_and_figure_and_resumes(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--out",
        str(out),
        "--models",
        "unet",
        "--tiny",
        "--budget-minutes",
        str(BUDGET_MINUTES),
        "--num-examples",
        "3",
        "--batch-size",
        "4",
        "--crop-size",
        "32",
        "--steps-per-epoch",
        "3",
        "--precision",
        "float32",
    ]
    assert main(args) == 0, capsys.readouterr().err
    for name in ("table1.md", "table2.md", "comparison.md", "comparison.csv", "figure5.png", "plan.json"):
        assert (out / name).is_file(), name
    assert (out / "figure5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run_dir = out / "runs" / "unet-seed0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    detection = json.loads((run_dir / "detection.json").read_text())
    rows = read_csv(out / "comparison.csv")
    assert [(r["table"], r["model"]) for r in rows] == [("table1", "unet"), ("table2", "unet")]
    row = rows[0]
    pooled = metrics["test"]["model"]["pooled"]
    for key in ("mean_dice", "paper_mpa", "miou", "mpa", "mitosis_dice"):
        assert float(row[f"{key}_mean"]) == pytest.approx(pooled[key], abs=1e-6), key
    assert float(row["detection_f1_mean"]) == pytest.approx(detection["test"]["f1"], abs=1e-6)  # CSV keeps 6 decimals
    assert row["paper_mean_dice"] == "0.73" and row["paper_miou"] == "0.51" and row["seeds"] == "1"
    assert 0.0 <= detection["score_threshold"] <= 1.0 and detection["mpp"] == 0.5
    table1 = (out / "table1.md").read_text()
    assert "| CA | SA | Res | model | Mean Dice | MPA (paper: mean precision) | MIoU |" in table1
    assert f"| - | - | - | `unet` | {pooled['mean_dice']:.3f} |" in table1
    assert "| U-Net | `unet` |" in (out / "table2.md").read_text()
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["epochs"], plan["steps_per_epoch"]) == (1, 1) and plan["estimated_seconds"] is not None
    assert plan["budget_minutes"] == BUDGET_MINUTES and len(read_csv(run_dir / "batch_loss.csv")) == 1  # as planned

    stamp = os.path.getmtime(run_dir / "best.keras")
    config = CompareConfig(
        output_dir=str(out),
        models=("unet",),
        tiny=True,
        budget_minutes=BUDGET_MINUTES,
        num_examples=3,
        batch_size=4,
        crop_size=32,
        steps_per_epoch=3,
        precision="float32",
    )
    result = run_compare(config, log=lambda *a: None)
    assert result["trained"] == [] and result["skipped"] == [("unet", 0)]
    assert os.path.getmtime(run_dir / "best.keras") == stamp
    assert result["summaries"]["unet"]["mean_dice"][0] == pytest.approx(pooled["mean_dice"])

    changed = CompareConfig(**{**config.__dict__, "crop_size": 64})
    with pytest.raises(ValueError, match="different recipe.*crop_size"):
        run_compare(changed, log=lambda *a: None)
