"""zoo/recipes/mitosis_v2.yaml: a slide split of atypia14_train, AMi-Br crops, MoNuSeg negatives, 0.25 um/px.

The recipe's own data are not on every machine: its pipeline is built here on tiny
folders of the same layout, and on the real folders when they are present.
"""

import dataclasses
import os

import numpy as np
import pytest
from format_fixtures import save, tissue
from voc_fixtures import amibr_parts, atypia14_train

from mitoseg_tf.data.mixture import check_spec, manifest
from mitoseg_tf.data.sources import make_data
from mitoseg_tf.training.run import load_recipe

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "zoo", "recipes", "mitosis_v2.yaml")
SLIDES = ["H03", "H04", "H05", "H07", "H10", "H11", "H12", "H14", "H15", "H17", "H18"]
FRAME = (120, 140)  # tiny stand-ins for the 1485x1663 frames


def test_the_recipe_splits_atypia14_train_by_slide():
    config = load_recipe(RECIPE)
    spec = check_spec(config.data_options)
    assert config.data == "mixture" and config.target_mpp == 0.25 and config.augment["stain_jitter"] >= 0.2
    frames, amibr, monuseg = spec["train"]
    split = frames["options"]["split_ids"]
    assert frames["data"] == "voc" and frames["options"]["preset"] == "atypia14_train" and frames["split"] == "train"
    assert len(split["train"]) == 8 and sorted(split["train"] + split["validation"]) == SLIDES
    assert not set(split["train"]) & set(split["validation"])
    # validation reads the same frames with the same options, the other side of the split
    assert spec["validation"] == {
        "data": "voc",
        "data_dir": "atypia14_train",
        "split": "validation",
        "options": frames["options"],
    }
    assert amibr["data_dir"] == "amibr" and monuseg["background_only"]


def _tiny_root(root):
    atypia14_train(os.path.join(root, "atypia14_train"), {f"{s}_00Aa": [(60, 70)] for s in SLIDES}, FRAME)
    amibr_parts(
        os.path.join(root, "amibr"),
        os.path.join(root, "unused"),
        [("001.tiff", 1, False), ("002.tiff", 2, True), ("003.tiff", 3, False)],
        [],
    )
    for name in ("TCGA-A1-0001-01Z", "TCGA-A2-0002-01Z"):
        mask = np.zeros((100, 100), np.uint8)
        mask[10:20, 10:20] = 255
        save(os.path.join(root, "monuseg", "train", "images", f"{name}.tif"), tissue(100, 100))
        save(os.path.join(root, "monuseg", "train", "masks", f"{name}.png"), mask)


def _pipelines(config, root, **reader):
    options = dict(config.data_options)
    for component in options["train"] + [options["validation"]]:
        if component["data"] == "voc":
            component["options"] = {**component["options"], **reader}
    data = dict(data_dir=root, batch_size=4, seed=0, target_mpp=config.target_mpp, **options)
    train = make_data("mixture", "train", training=True, crop_size=32, augment=config.augment, **data)
    validation = make_data("mixture", "validation", training=False, eval_tile=64, **data)
    return options, train, validation


def test_the_recipe_pipeline_builds_on_folders_of_its_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("MITOSEG_PREPARED_DIR", str(tmp_path / "prepared"))
    root = str(tmp_path / "data")
    _tiny_root(root)
    config = load_recipe(RECIPE)
    options, train, validation = _pipelines(config, root, frame_size=list(FRAME))
    images, masks = next(iter(train))
    assert images.shape == (4, 32, 32, 3) and masks.shape == (4, 32, 32, 1)
    # 120x140 frames at 0.2273 um/px are 109x127 at 0.25: 4 tiles of 64 each (rows 0 and 45, cols 0 and 63)
    shapes = [tuple(x.shape) for x, _ in validation]
    assert shapes == [(4, 64, 64, 3)] * 3 and validation.cardinality().numpy() == 3
    ids = manifest(options, root)
    assert {i[:3] for i in ids["validation"]} == {"H15", "H17", "H18"}
    assert {i[:3] for i in ids["train[0] voc"]} == set(SLIDES) - {"H15", "H17", "H18"}
    assert ids["train[1] amibr"] == ["MIDOG21_1", "MIDOG21_2", "MIDOG21_3"]


def test_the_recipe_reads_the_real_folders(shared_data):
    from mitoseg_tf.data.formats import read_records

    # Parsing only (preparing the frames is a training run's job): every frame passes the preset's checks and
    # every slide is one the recipe splits; present + frames_not_here.txt = the published 393 frames.
    root = shared_data.need("atypia14_train")
    frames = read_records("voc", root, preset="atypia14_train")
    with open(os.path.join(root, "frames_not_here.txt")) as fh:
        absent = [line for line in fh if line.strip()]
    assert {r.slide for r in frames} == set(SLIDES)
    assert len(frames) == 265 and len(frames) + len(absent) == 393 and sum(len(r.points) for r in frames) == 578
    assert all(len(r.points) >= 1 for r in frames)
    split = load_recipe(RECIPE).data_options["train"][0]["options"]["split_ids"]
    by_side = {side: sum(r.slide in slides for r in frames) for side, slides in split.items()}
    assert by_side == {"train": 199, "validation": 66}
    assert len(read_records("amibr", shared_data.need("amibr"))) == 1800


def test_the_cpu_cut_differs_from_the_recipe_only_in_steps_and_validation_count():
    full = dataclasses.asdict(load_recipe(RECIPE))
    cut = dataclasses.asdict(load_recipe(os.path.join(os.path.dirname(RECIPE), "mitosis_v2_cpu.yaml")))
    differ = {k for k in full if full[k] != cut[k]}
    assert differ == {"recipe", "epochs", "steps_per_epoch", "budget_minutes"}
    assert cut["epochs"] * cut["steps_per_epoch"] == 1600


def test_the_second_sitting_continues_the_cpu_cut_and_changes_only_its_schedule():
    folder = os.path.dirname(RECIPE)
    cut = dataclasses.asdict(load_recipe(os.path.join(folder, "mitosis_v2_cpu.yaml")))
    more = dataclasses.asdict(load_recipe(os.path.join(folder, "mitosis_v2_cpu_continued.yaml")))
    differ = {k for k in cut if cut[k] != more[k]}
    schedule = {"epochs", "steps_per_epoch", "budget_minutes", "learning_rate", "seed"}
    assert differ == {"recipe", "init_weights"} | schedule
    # It starts from the first sitting's chosen checkpoint, and the two sittings make 4,000 steps.
    assert more["init_weights"] == "runs/mitosis_v2_cpu_s0/best.keras"
    assert cut["epochs"] * cut["steps_per_epoch"] + more["epochs"] * more["steps_per_epoch"] == 4000
    assert more["learning_rate"] == cut["learning_rate"] / 2 and more["seed"] != cut["seed"]


def test_the_hard_negative_round_differs_from_the_continued_run_only_in_its_negatives_and_schedule():
    folder = os.path.dirname(RECIPE)
    more = dataclasses.asdict(load_recipe(os.path.join(folder, "mitosis_v2_cpu_continued.yaml")))
    round2 = dataclasses.asdict(load_recipe(os.path.join(folder, "mitosis_v2_cpu_hard_negatives.yaml")))
    differ = {k for k in more if more[k] != round2[k]}
    assert differ == {"recipe", "init_weights", "data_options", "epochs", "steps_per_epoch", "budget_minutes", "seed"}
    assert round2["init_weights"] == "runs/mitosis_v2_cpu_c1/best.keras"
    # Only the ATYPIA training component changes: it reads the continued run's mined look-alikes.
    before, after = more["data_options"], round2["data_options"]
    assert before["validation"] == after["validation"] and before["train"][1:] == after["train"][1:]
    mined = after["train"][0].pop("hard_negatives")
    assert mined == {"from_run": "runs/mitosis_v2_cpu_c1", "oversample": 4}
    assert after["train"][0] == before["train"][0]


def _pair(first, second):
    """Two recipes of zoo/recipes as dicts, and the fields in which they differ."""
    folder = os.path.dirname(RECIPE)
    a, b = (dataclasses.asdict(load_recipe(os.path.join(folder, name))) for name in (first, second))
    return a, b, {k for k in a if a[k] != b[k]}


def test_the_third_sitting_continues_the_protocols_pick_and_changes_only_its_schedule():
    more, third, differ = _pair("mitosis_v2_cpu_continued.yaml", "mitosis_v2_cpu_continued2.yaml")
    assert differ == {"recipe", "init_weights", "steps_per_epoch", "budget_minutes", "seed"}
    assert third["init_weights"] == "runs/mitosis_v2_cpu_c1/best.keras"
    # s0 (1,600) + c1 (2,400) + this run make 5,800 steps, on a seed no earlier sitting used.
    assert 1600 + more["epochs"] * more["steps_per_epoch"] + third["epochs"] * third["steps_per_epoch"] == 5800
    assert third["seed"] not in {0, 1, 2}


def test_the_larger_patch_variant_differs_from_its_control_only_in_patch_and_batch():
    control, larger, differ = _pair("mitosis_v2_cpu_continued2.yaml", "mitosis_v2_cpu_256.yaml")
    assert differ == {"recipe", "crop_size", "batch_size", "steps_per_epoch", "seed"}
    assert larger["init_weights"] == control["init_weights"] == "runs/mitosis_v2_cpu_c1/best.keras"
    # Twice the pixels per step (8 x 256^2 against 16 x 128^2) for half the steps: the same pixels in all.
    total = [r["epochs"] * r["steps_per_epoch"] * r["batch_size"] * r["crop_size"] ** 2 for r in (control, larger)]
    assert total[0] == total[1]
    assert larger["seed"] not in {0, 1, 2, 3}


def test_the_no_frames_ablation_drops_only_the_atypia_training_frames():
    control, ablation, differ = _pair("mitosis_v2_cpu.yaml", "mitosis_v2_cpu_no_frames.yaml")
    v1 = dataclasses.asdict(load_recipe(os.path.join(os.path.dirname(RECIPE), "mitosis_unet.yaml")))
    assert differ == {"recipe", "data_options"}
    before, after = control["data_options"], ablation["data_options"]
    # Validated on the same ATYPIA slides, so the protocol can compare the two runs.
    assert after["validation"] == before["validation"]
    assert [c["data"] for c in before["train"]] == ["voc", "amibr", "monuseg"]
    # Trained on v1's two sources with v1's weights.
    assert after["train"] == v1["data_options"]["train"]


def test_the_fine_tune_of_v1_starts_from_the_shipped_weights_and_changes_only_its_schedule():
    control, tune, differ = _pair("mitosis_v2_cpu.yaml", "mitosis_v2_cpu_from_v1.yaml")
    assert differ == {"recipe", "init_weights", "epochs", "steps_per_epoch", "budget_minutes", "learning_rate"}
    assert tune["init_weights"] == "mitosis" and control["init_weights"] is None
    assert tune["epochs"] * tune["steps_per_epoch"] == 900
    assert tune["learning_rate"] == pytest.approx(control["learning_rate"] * 0.3)
