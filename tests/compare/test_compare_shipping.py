"""``mitoseg compare --recipe FILE --out RUNS --ship TAG``: each Table 2 network's best validation seed, shipped.

Nothing trains here: each run folder holds a freshly built width-4 network as its
``best.keras`` and hand-written metrics, and its record is made from those files by
the runner's own ``record_fields``, so the choice of seed is known in advance.
"""

import dataclasses
import json
import os
import shutil

import keras
import numpy as np
import pytest

from mitoseg_tf.cli.main import main
from mitoseg_tf.compare import records as records_lib
from mitoseg_tf.compare import shipping
from mitoseg_tf.compare.recipe import RUNS_FOLDER, load_compare_recipe, record_fields
from mitoseg_tf.zoo import build, get_card, list_models, weights_card

TAG = "tiny14"
SOURCES = """\
data: mixture
data_dir: ../shared/data
target_mpp: 0.25
data_options:
  train:
    - data: voc
      data_dir: atypia14_train
      split: train
      options: &atypia14
        preset: atypia14_train
        split_ids: {train: [H03], validation: [H15]}
    - {data: amibr, data_dir: amibr, weight: 0.3, positive_fraction: 1.0}
    - {data: monuseg, data_dir: monuseg/train, weight: 0.2, background_only: true}
  validation: {data: voc, data_dir: atypia14_train, split: validation, options: *atypia14}
  test: {data: mitos12, data_dir: mitos12_dev}
test_split: test
"""
MS_RCNN_ARGS = {k: list(v) if isinstance(v, tuple) else v for k, v in get_card("ms_rcnn").tiny.items()}
MS_RCNN_ARGS.pop("input_shape")
RECIPE = (
    "model: unet\n"
    + SOURCES
    + f"""\
base_filters: 4
crop_size: 32
batch_size: 2
epochs: 1
steps_per_epoch: 1
precision: float32
compare:
  models: [unet, unet_3plus, ms_rcnn, mcsa_unet]
  seeds: {{default: [0, 1], unet: [0, 1, 2]}}
  model_args:
    unet_3plus: {{skip_filters: 4}}
    ms_rcnn: {json.dumps(MS_RCNN_ARGS)}
  measured_on: {{validation: "the tiny validation slides", test: "the tiny test fields"}}
"""
)
# Validation Mean Dice by (model, seed): U-Net's seeds 1 and 2 tie (the lower wins), UNet 3+'s seed 1 and
# MS R-CNN's seed 0 lead; MCSA-Unet's seed 1 is not recorded, so it cannot be chosen among all its seeds.
VALIDATION_DICE = {
    ("unet", 0): 0.70,
    ("unet", 1): 0.75,
    ("unet", 2): 0.75,
    ("unet_3plus", 0): 0.60,
    ("unet_3plus", 1): 0.65,
    ("ms_rcnn", 0): 0.50,
    ("ms_rcnn", 1): 0.40,
    ("mcsa_unet", 0): 0.90,
}
CHOSEN = {"unet": 1, "unet_3plus": 1, "ms_rcnn": 0}


def _metrics(dice):
    pooled = {"mean_dice": dice, "paper_mpa": dice, "miou": dice - 0.1, "mpa": dice, "mitosis_dice": dice - 0.3}
    return {"model": {"pooled": pooled}}


def _detection(f1):
    def scores(value):
        return {"f1": value, "precision": value, "recall": value, "tp": 3, "fp": 1, "fn": 1}

    return {
        "score_threshold": 0.6,
        "min_area_um2": 20.0,
        "pixel_threshold": 0.5,
        "match_distance_um": 5.0,
        "figure_score": "mean",
        "mpp": 0.25,
        "tta": False,
        "validation": scores(f1),
        "validation_by_distance": {"5um": scores(f1)},
        "validation_held_out": scores(f1 - 0.05),
        "test": scores(f1 - 0.2),
        "test_by_distance": {"5um": scores(f1 - 0.2)},
    }


def _write_run(plan, out, records, model, seed, checkpoint=None):
    """A run folder as ``train_run`` leaves it (``checkpoint`` copied in as best.keras) and its record."""
    config = plan.run_config(model, seed, str(out / RUNS_FOLDER))
    run_dir = out / RUNS_FOLDER / config.run_name
    run_dir.mkdir(parents=True)
    if checkpoint is not None:
        shutil.copy(checkpoint, run_dir / "best.keras")
    dice = VALIDATION_DICE[(model, seed)]
    files = {
        "config.json": {**dataclasses.asdict(config), "resolved_precision": "float32"},
        "metrics.json": {"train_seconds": 10.0 + seed, "validation": _metrics(dice), "test": _metrics(dice - 0.1)},
        "detection.json": _detection(dice - 0.1),
    }
    for name, values in files.items():
        (run_dir / name).write_text(json.dumps(values))
    folder = records_lib.record_dir(str(records), model, seed)
    records_lib.write_record(folder, record_fields(config, str(run_dir), plan.measured_on))
    return run_dir


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A recipe, its run folders and records (no training), shipped once through the CLI into a temporary folder."""
    root = tmp_path_factory.mktemp("campaign")
    recipe, out, records, weights = root / "tiny.yaml", root / "out", root / "records", root / "weights"
    recipe.write_text(RECIPE)
    plan = load_compare_recipe(str(recipe))
    # U-Net's seeds get different networks, so the shipped weights show which seed they came from.
    networks = {("unet", s): build("unet", base_filters=4, input_shape=(None, None, 3)) for s in (0, 1, 2)}
    unet_3plus = build("unet_3plus", base_filters=4, skip_filters=4, input_shape=(None, None, 3))
    ms_rcnn = build("ms_rcnn", input_shape=(None, None, 3), **MS_RCNN_ARGS)
    networks.update({("unet_3plus", s): unet_3plus for s in (0, 1)} | {("ms_rcnn", s): ms_rcnn for s in (0, 1)})
    runs = {}
    for number, (job, network) in enumerate(networks.items()):
        checkpoint = root / f"checkpoint{number}.keras"
        network.save(str(checkpoint))
        runs[job] = _write_run(plan, out, records, *job, checkpoint)
    _write_run(plan, out, records, "mcsa_unet", 0)  # its seed 1 is never recorded, so its folder is never read
    argv = ["compare", "--recipe", str(recipe), "--out", str(out), "--records", str(records)]
    code = main([*argv, "--ship", TAG, "--weights-dir", str(weights)])
    return dict(
        recipe=recipe, out=out, records=records, weights=weights, argv=argv, code=code, networks=networks, runs=runs
    )


def test_the_recipes_sources_map_to_their_licences_and_an_unknown_one_fails_loudly(tmp_path):
    recipes = os.path.join(os.path.dirname(__file__), "..", "..", "zoo", "recipes")
    plan = load_compare_recipe(os.path.join(recipes, "compare_atypia.yaml"))
    # the ATYPIA frames come through the generic voc layout: only its preset says which dataset they are
    assert shipping.trained_datasets(plan.base) == ["mitos_atypia14", "amibr", "monuseg"]
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(RECIPE.replace("data: monuseg, data_dir: monuseg/train", "data: folder, data_dir: mine"))
    with pytest.raises(ValueError, match=r"data_options.train\[2\]: no licence is recorded for the 'folder' source"):
        shipping.trained_datasets(load_compare_recipe(str(recipe)).base)


def test_each_network_ships_its_best_validation_seed_and_loads_through_build(campaign, monkeypatch, capsys):
    weights = campaign["weights"]
    # MCSA-Unet (seed 1 unrecorded) and the Table 2 networks the recipe lacks are reported, not skipped
    assert campaign["code"] == 1
    manifest = json.loads((weights / "manifest.json").read_text())
    assert sorted(manifest) == [f"{m}/{TAG}" for m in ("ms_rcnn", "unet", "unet_3plus")]
    for model, seed in CHOSEN.items():
        entry = manifest[f"{model}/{TAG}"]
        assert entry["selection"]["seed"] == seed, model
        assert entry["validation"] == _metrics(VALIDATION_DICE[(model, seed)])["model"]
        assert entry["test"] == _metrics(VALIDATION_DICE[(model, seed)] - 0.1)["model"]
        assert entry["detection"]["test"]["5um"]["f1"] == pytest.approx(VALIDATION_DICE[(model, seed)] - 0.3)
        assert os.path.getsize(weights / entry["file"]) < shipping.MAX_WEIGHTS_BYTES
    assert manifest[f"unet/{TAG}"]["selection"]["values"] == {"0": 0.70, "1": 0.75, "2": 0.75}
    assert manifest[f"unet_3plus/{TAG}"]["arguments"] == {"base_filters": 4, "skip_filters": 4}
    assert "base_filters" not in manifest[f"ms_rcnn/{TAG}"]["arguments"]  # its widths are its backbone's

    monkeypatch.setattr(weights_card, "WEIGHTS_DIR", str(weights))
    assert list_models(pretrained=True) == ["ms_rcnn", "unet", "unet_3plus"]
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    for model in ("unet", "unet_3plus"):
        network = campaign["networks"][(model, CHOSEN[model])]
        loaded = build(model, weights=TAG, input_shape=(32, 32, 3))
        # float16 storage rounds each weight to 11 significant bits: outputs agree closely, weights exactly
        outputs = [keras.tree.flatten(m.predict_on_batch(x)) for m in (loaded, network)]  # UNet 3+: deep supervision
        for got, want in zip(*outputs):
            np.testing.assert_allclose(got, want, atol=2e-2)
        for a, b in zip(network.weights, loaded.weights):
            np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(np.float16).astype(np.float32))
    loaded = build("ms_rcnn", weights=TAG)  # the manifest's arguments rebuild the small backbone
    for a, b in zip(campaign["networks"][("ms_rcnn", 0)].weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(np.float16).astype(np.float32))

    card = weights_card.weights_card(f"unet/{TAG}")
    assert [d.dataset for d in card.data_licences] == ["mitos_atypia14", "amibr", "monuseg"]
    assert all(d.terms in card.licence for d in card.data_licences)
    assert card.recipe == str(campaign["recipe"]) and "the tiny test fields" in card.data
    assert "the tiny validation slides chose everything" in card.chosen_by
    assert "the tiny test fields, chose nothing" in card.chosen_by
    assert card.extra["comparison"]["record"] == records_lib.record_dir(str(campaign["records"]), "unet", 1)
    capsys.readouterr()
    assert main(["weights", "unet/*"]) == 0
    listing = capsys.readouterr().out
    assert "test:        detection F1 0.450 at 5 um; mitosis Dice 0.350, Mean Dice 0.650" in listing
    assert "chosen by:   the tiny validation slides chose everything" in listing


def test_records_that_are_missing_are_reported_as_not_shipped(campaign, tmp_path):
    result = shipping.ship_comparison(
        str(campaign["recipe"]),
        str(campaign["out"]),
        TAG,
        records_dir=str(campaign["records"]),
        models=("mcsa_unet", "res_unet"),
        weights_dir=str(tmp_path),
        log=lambda *a: None,
    )
    assert result["shipped"] == {} and list(result["not_shipped"]) == ["res_unet", "mcsa_unet"]
    assert "seed(s) 1 of [0, 1] not recorded" in result["not_shipped"]["mcsa_unet"]
    assert "not a model of" in result["not_shipped"]["res_unet"]
    assert not os.listdir(tmp_path)


def test_a_chosen_run_folder_must_exist_and_hold_its_records_run(campaign, tmp_path):
    ship = dict(records_dir=str(campaign["records"]), weights_dir=str(tmp_path / "weights"), log=lambda *a: None)
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError) as caught:
        shipping.ship_comparison(str(campaign["recipe"]), str(elsewhere), TAG, **ship)
    message = str(caught.value)
    assert f"{elsewhere / RUNS_FOLDER / 'unet_s1'} is missing" in message and "nothing was shipped" in message
    assert (
        f"rm -r {records_lib.record_dir(str(campaign['records']), 'unet', 1)} && mitoseg compare --recipe "
        f"{campaign['recipe']} --out {elsewhere} --records {campaign['records']} --models unet --max-runs 1"
    ) in message
    assert "ms_rcnn seed 0" in message and "unet_3plus seed 1" in message

    # a folder retrained since its record (other validation metrics) is not the record's run
    copy = elsewhere / RUNS_FOLDER / "unet_s1"
    shutil.copytree(campaign["runs"][("unet", 1)], copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["validation"]["model"]["pooled"]["mean_dice"] = 0.5
    (copy / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="unet_s1 has other validation metrics than the record"):
        shipping.ship_comparison(str(campaign["recipe"]), str(elsewhere), TAG, models=("unet",), **ship)
    assert not (tmp_path / "weights").exists()


def test_a_file_over_the_size_limit_is_refused_and_nothing_is_written(campaign, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shipping, "MAX_WEIGHTS_BYTES", 1000)
    weights = tmp_path / "weights"
    argv = [*campaign["argv"], "--ship", TAG, "--weights-dir", str(weights), "--models", "unet"]
    assert main(argv) == 1
    output = capsys.readouterr().out
    assert "NOT shipped unet: unet/tiny14: the float16 weights of" in output and "over the 0.001 MB" in output
    assert not os.listdir(weights)  # no file, no .part, no manifest
