"""The ``mixture`` source: patches drawn from several datasets by weight, validation on another."""

import json
import os

import numpy as np
import pytest
from format_fixtures import save

from mitoseg_tf.data.mixture import check_spec, manifest
from mitoseg_tf.data.sources import load_source, make_data


def _folder(root, colour, count, size=(96, 96)):
    """images/ + masks/ of flat ``colour`` images, each with one 12x12 object."""
    for i in range(count):
        image = np.empty(size + (3,), np.uint8)
        image[...] = colour
        mask = np.zeros(size, np.uint8)
        mask[40:52, 40:52] = 255
        save(os.path.join(root, "images", f"{os.path.basename(root)}{i}.png"), image)
        save(os.path.join(root, "masks", f"{os.path.basename(root)}{i}.png"), mask)


def _spec(weights=(0.25, 0.75)):
    return {
        "train": [
            {"data": "folder", "data_dir": "red", "weight": weights[0], "positive_fraction": 1.0},
            {"data": "folder", "data_dir": "blue", "weight": weights[1], "background_only": True},
        ],
        "validation": {"data": "folder", "data_dir": "green"},
    }


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MITOSEG_PREPARED_DIR", str(tmp_path / "prepared"))
    _folder(str(tmp_path / "data" / "red"), (200, 40, 40), 3)
    _folder(str(tmp_path / "data" / "blue"), (40, 40, 200), 3)
    _folder(str(tmp_path / "data" / "green"), (40, 200, 40), 2)
    return str(tmp_path / "data")


def test_patches_come_from_each_component_by_weight_and_background_only_is_unlabelled(root):
    ds = make_data("mixture", "train", training=True, batch_size=8, crop_size=32, data_dir=root, seed=0, **_spec())
    red = blue = 0
    for images, masks in ds.take(50).as_numpy_iterator():
        means = images.reshape(len(images), -1, 3).mean(1)
        is_red = means[:, 0] > means[:, 2]
        red, blue = red + is_red.sum(), blue + (~is_red).sum()
        labelled = masks.reshape(len(masks), -1).max(1) > 0
        assert not labelled[~is_red].any()  # the blue folder's objects are not mitoses here
        assert labelled[is_red].all()  # red patches are centred on their object (positive_fraction 1)
    assert 0.19 < red / (red + blue) < 0.31


def test_validation_split_and_manifest(root):
    examples = list(load_source("mixture", "validation", data_dir=root, **_spec()).as_numpy_iterator())
    assert sorted(e["id"].decode() for e in examples) == ["green0", "green1"]
    assert (examples[0]["image"][0, 0] == (40, 200, 40)).all()
    assert manifest(_spec(), root) == {
        "train[0] folder": ["red0", "red1", "red2"],
        "train[1] folder": ["blue0", "blue1", "blue2"],
        "validation": ["green0", "green1"],
    }
    with pytest.raises(ValueError, match=r"mixture: no 'test' dataset; it has train, validation"):
        load_source("mixture", "test", data_dir=root, **_spec())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("validation"), "needs data_options with 'train'"),
        (lambda s: s.update(train=[]), "non-empty list of components"),
        (lambda s: s["train"][0].update(wieght=1), r"unknown key\(s\) \['wieght'\]; accepted: .*weight"),
        (lambda s: s["train"][0].update(data="mitos13"), "'data' must be one of the public formats"),
        (lambda s: s["train"][0].update(weight=0), "'weight' must be a positive number"),
        (lambda s: s["train"][0].update(exclude_um=10), "needs background_only: true"),
        (lambda s: s["validation"].pop("data_dir"), "'data_dir' is required"),
        (lambda s: s.update(tset={}), r"unknown key\(s\) \['tset'\]"),
    ],
)
def test_malformed_specs_are_refused(change, message):
    spec = _spec()
    change(spec)
    with pytest.raises(ValueError, match=message):
        check_spec(spec)


def test_unknown_augmentation_is_refused(root):
    with pytest.raises(
        ValueError, match=r"unknown augmentation option\(s\) \['hue'\]; accepted: stain_jitter, hsv_jitter"
    ):
        make_data(
            "mixture",
            "train",
            training=True,
            batch_size=8,
            crop_size=32,
            data_dir=root,
            augment={"hue": 0.1},
            **_spec(),
        )


def test_a_recipe_trains_on_a_mixture_and_calibrates_detection_on_its_validation(root, tmp_path, capsys):
    from mitoseg_tf.cli.main import main

    recipe = tmp_path / "mix.yaml"
    recipe.write_text(
        json.dumps(
            {
                "model": "unet",
                "data": "mixture",
                "data_dir": root,
                "data_options": _spec(),
                "test_split": None,
                "base_filters": 4,
                "crop_size": 32,
                "batch_size": 4,
                "epochs": 1,
                "steps_per_epoch": 2,
                "eval_tile": 64,
                "augment": {"stain_jitter": 0.2, "hsv_jitter": 0.1},
                "num_overlays": 1,
            }
        )  # JSON is YAML
    )
    assert main(["train", "--recipe", str(recipe), "--output-dir", str(tmp_path / "runs"), "--run-name", "mix"]) == 0
    run = tmp_path / "runs" / "mix"
    config = json.loads((run / "config.json").read_text())
    assert (
        config["data_split"]["train[1] folder"] == ["blue0", "blue1", "blue2"]
        and config["augment"]["hsv_jitter"] == 0.1
    )
    detection = json.loads((run / "detection.json").read_text())
    assert detection["min_area_um2"] in detection["min_area_choices_um2"] and detection["test"] is None
    assert set(detection["validation_by_distance"]) == {"5um", "8um"}
    # two validation images: each is also scored at the settings chosen on the other, over the same true figures
    held_out, chosen = detection["validation_held_out"], detection["validation"]
    assert held_out["tp"] + held_out["fn"] == chosen["tp"] + chosen["fn"]
    assert f"each image at the size and threshold chosen on the others: {held_out['f1']:.3f}" in capsys.readouterr().out
