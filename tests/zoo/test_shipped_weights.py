"""The weights shipped in the package load, and segment nuclei on a real MoNuSeg image."""

import os

import numpy as np
import pytest
import yaml

from mitoseg_tf.zoo import build
from mitoseg_tf.zoo.pretrained import available_weights, load_rescorer, weights_entry
from mitoseg_tf.zoo.weights_card import shipped_cards

REPOSITORY = os.path.join(os.path.dirname(__file__), "..", "..")
# Data sources of a recipe -> the dataset whose terms apply (a VOC folder is what its preset names).
RECIPE_DATASETS = {"voc:atypia14_train": "mitos_atypia14"}

# A validation image of the recipes (zoo/recipes/monuseg_*.yaml): never trained on.
VALIDATION_IMAGE = "TCGA-A7-A13F-01Z-00-DX1"


def test_manifest_lists_the_shipped_weights_with_their_card():
    shipped = available_weights()
    assert {"unet/monuseg", "mcsa_unet/monuseg", "unet/mitosis"} <= set(shipped)
    for entry in shipped.values():
        assert "CC BY-NC-SA 4.0" in entry["licence"] and entry["recipe"].startswith("zoo/recipes/")
        size = os.path.getsize(
            os.path.join(os.path.dirname(__file__), "..", "..", "mitoseg_tf", "zoo", "weights", entry["file"])
        )
        assert size <= 10 * 1024 * 1024


def _trained_on(recipe):
    """The datasets a recipe trains on: its data, or each training component of a mixture."""
    with open(os.path.join(REPOSITORY, recipe)) as fh:
        config = yaml.safe_load(fh)
    sources = config["data_options"]["train"] if config["data"] == "mixture" else [config]
    names = {f"{s['data']}:{s.get('options', s.get('data_options', {})).get('preset')}": s["data"] for s in sources}
    return {RECIPE_DATASETS.get(key, name) for key, name in names.items()}


def test_every_shipped_card_names_the_terms_of_every_dataset_its_recipe_trained_on():
    for key, card in shipped_cards().items():
        named = {d.dataset for d in card.data_licences}
        assert named == _trained_on(card.recipe), key
        assert all(d.terms and d.source for d in card.data_licences)
        if "monuseg" in named:  # its non-commercial, share-alike terms pass to the weights
            assert "CC BY-NC-SA 4.0" in card.licence, key


@pytest.mark.parametrize("name", ["unet", "mcsa_unet"])
def test_shipped_weights_segment_a_real_monuseg_image(name, shared_data):
    from mitoseg_tf.data.images import read_image, read_label_image
    from mitoseg_tf.inference import predict_image

    root = shared_data.need("monuseg", "train")
    image = read_image(os.path.join(root, "images", f"{VALIDATION_IMAGE}.tif"))[:512, :512]
    truth = read_label_image(os.path.join(root, "masks", f"{VALIDATION_IMAGE}.png"))[:512, :512].astype(bool)

    def dice(model):
        pred = predict_image(model, image, tile=256) > 0.5
        return 2 * (pred & truth).sum() / (pred.sum() + truth.sum())

    trained = dice(build(name, weights="monuseg", input_shape=(None, None, 3)))
    untrained = dice(build(name, base_filters=16, input_shape=(None, None, 3)))
    # measured: ~0.8 for the shipped weights; a random initialisation scores far lower
    assert trained > 0.7 and trained > untrained + 0.2, (trained, untrained)


PROTOCOL_PIXEL_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # docs/results/detector_candidates.py
# The mitos12_dev field the default detector is scored on in the suite (the card holds all five).
FIELD = "A00_00"


def _default_settings(entry):
    """The settings block ``mitoseg predict`` runs by default: the classifier's when one ships."""
    return entry["rescorer"]["detection"] if "rescorer" in entry else entry["detection"]


def test_shipped_mitosis_settings_were_chosen_on_the_atypia_validation_slides_and_tested_on_mitos12_dev():
    entry = weights_entry("unet", "mitosis")
    assert "MITOS-ATYPIA-14 validation slides" in entry["chosen_by"] and "mitosis_v1" in entry["chosen_by"]
    for settings in [entry["detection"]] + ([entry["rescorer"]["detection"]] if "rescorer" in entry else []):
        assert settings["pixel_threshold"] in PROTOCOL_PIXEL_THRESHOLDS and 0 <= settings["score_threshold"] <= 1
        assert set(settings["validation"]) == set(settings["test"]) == {"5um", "8um"}
        # the held-out estimate of the validation slides is never above the in-sample one
        assert settings["validation_held_out"]["f1"] <= settings["validation"]["5um"]["f1"]
        # the card's test is the sum of its five fields
        fields = settings["test_fields"]
        assert sorted(fields) == ["A00_00", "A00_08", "A01_04", "A01_06", "A01_09"]
        tp, fp, fn = np.sum([f["5um"] for f in fields.values()], axis=0)
        assert (tp, fp, fn) == tuple(settings["test"]["5um"][k] for k in ("tp", "fp", "fn"))
        assert settings["test"]["5um"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert "AMi-Br" in entry["data"] and "CC BY-NC-SA 4.0" in entry["licence"]
    assert entry["recipe"] == "zoo/recipes/mitosis_unet.yaml"


def test_mitosis_v1_keeps_the_earlier_detector_on_the_same_files():
    v1, now = weights_entry("unet", "mitosis_v1"), weights_entry("unet", "mitosis")
    assert v1["file"] == now["file"] and v1["sha256"] == now["sha256"]
    settings = v1["detection"]
    assert settings["pixel_threshold"] == 0.5 and settings["tta"] is True and "test" not in settings
    card = v1["rescorer"]
    assert card["detection"]["pixel_threshold"] == 0.2 and card["detection"]["score_threshold"] == pytest.approx(
        0.8306, abs=1e-4
    )
    assert card["detection"]["pixel_threshold"] in card["detection"]["pixel_threshold_choices"]
    # in-sample (the fields that chose them) and held out: docs/RESULTS.md
    assert (
        card["detection"]["validation"]["5um"]["f1"] >= 0.75
        and card["detection"]["validation_held_out"]["f1"] < card["detection"]["validation"]["5um"]["f1"]
    )
    assert "MITOS-2012 never trained on" in card["training"]
    assert load_rescorer("unet", "mitosis_v1").count_params() == 287_137 * card["arguments"]["members"]


def test_shipped_mitosis_detector_scores_a_real_mitos12_field_as_its_card_says(shared_data):
    """One whole field predicted exactly as ``mitoseg predict --mpp 0.2456`` runs by default, scored here.

    The card's test numbers (mitos12_dev at the settings the validation slides chose) are its fields' sums;
    this recomputes one field's from the image and the true centres, so the card cannot drift from the code.
    """
    from mitoseg_tf.data.formats.mitos12 import read_centre_list
    from mitoseg_tf.data.images import read_image
    from mitoseg_tf.detection import score_images
    from mitoseg_tf.detector import Detector

    root = shared_data.need("mitos12_dev")
    stem = FIELD
    image = read_image(os.path.join(root, "images", f"{stem}.jpg"))
    truth = read_centre_list(os.path.join(root, "mitoses.csv"))[stem]

    result = Detector.from_weights("unet/mitosis").predict(image, mpp=0.2456)
    figures = result.figures
    found = score_images([([f.row_col for f in figures], [f.score for f in figures], truth)], 5.0 / 0.2456)
    expected = _default_settings(weights_entry("unet", "mitosis"))["test_fields"][stem]["5um"]
    assert [found["tp"], found["fp"], found["fn"]] == expected, (found, expected)

    # Independent of the card (which the same code wrote): the weights see this field's mitoses. Within 5 um
    # of each true centre the map peaks above 0.5 (measured 0.67-0.998 on its 6), while away from them it
    # averages under 0.01 (measured 0.0005); an untrained network's map sits near 0.5 everywhere.
    probability = result.probability
    rows, cols = np.ogrid[: probability.shape[0], : probability.shape[1]]
    near = np.zeros(probability.shape, bool)
    for r, c in truth:
        disk = (rows - r) ** 2 + (cols - c) ** 2 <= (5.0 / 0.2456) ** 2
        assert probability[disk].max() > 0.5, (r, c, probability[disk].max())
        near |= disk
    assert probability[~near].mean() < 0.01
