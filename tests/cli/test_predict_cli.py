"""``mitoseg predict`` end to end with a hand-set model whose figures are known, and detection scoring."""

import csv
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from mitoseg_tf.cli.main import main
from mitoseg_tf.detection import validate_feature_collection
from mitoseg_tf.detection.evaluation import evaluate_detection
from mitoseg_tf.inference import predict_image
from mitoseg_tf.zoo.pretrained import weights_entry

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "detection"))
from shifted_model import corner_reader, darkness_model  # noqa: E402


def disc(image, centre, radius, value):
    rows, cols = np.ogrid[: image.shape[0], : image.shape[1]]
    image[(rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2] = value


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    path = os.path.join(run_dir, "best.keras")
    darkness_model().save(path)
    return path


def test_predict_writes_maps_overlay_geojson_and_counts(checkpoint, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    image = np.full((300, 260, 3), 230, np.uint8)
    for centre in ((40, 40), (150, 200), (290, 10)):  # the last one is cut by the border
        disc(image, centre, 8, 20)
    disc(image, (220, 100), 8, 110)  # a paler blob: probability sigmoid(1.8) = 0.86
    image[100:102, 100:102] = 10  # a 4 px speck: 0.25 um^2, below the minimum area
    Image.fromarray(image).save(folder / "a.png")
    Image.fromarray(np.full((64, 64, 3), 230, np.uint8)).save(folder / "b.png")
    out = tmp_path / "out"
    code = main(
        ["predict", str(folder), "--checkpoint", checkpoint, "--out", str(out), "--tile", "128", "--mpp", "0.25"]
    )
    assert code == 0
    with open(out / "counts.csv", newline="") as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    assert rows["a.png"]["count"] == "4" and rows["b.png"]["count"] == "0"
    area = 300 * 260 * 0.25e-3**2
    assert float(rows["a.png"]["per_mm2"]) == pytest.approx(4 / area, rel=1e-4)
    assert float(rows["a.png"]["per_10hpf"]) == pytest.approx(8 / area, rel=1e-4)
    mask = np.asarray(Image.open(out / "a_mask.png"))
    assert mask.shape == (300, 260) and set(np.unique(mask)) == {0, 255}
    assert mask[40, 40] == 255 and mask[0, 0] == 0 and mask[100, 100] == 255  # the speck is in the mask, not counted
    probability = np.asarray(Image.open(out / "a_probability.png"))
    assert probability[40, 40] == 255 and probability[0, 0] == 0
    overlay = np.asarray(Image.open(out / "a_overlay.jpg"))
    assert overlay.shape == (300, 260, 3) and (np.abs(overlay.astype(int) - image).max(axis=-1) > 60).any()
    for kind in ("overview", "gallery"):
        assert np.asarray(Image.open(out / f"a_{kind}.jpg")).ndim == 3
    with open(out / "a_figures.csv", newline="") as fh:
        numbered = list(csv.DictReader(fh))
    assert [r["number"] for r in numbered] == ["1", "2", "3", "4"]
    assert float(numbered[0]["x_um"]) == pytest.approx(float(numbered[0]["x_px"]) * 0.25, abs=0.01)
    collection = json.loads((out / "a.geojson").read_text())
    validate_feature_collection(collection, image_shape=(300, 260))
    assert len(collection["features"]) == 4
    assert json.loads((out / "b.geojson").read_text())["features"] == []


def test_predict_uses_the_threshold_saved_in_the_run_folder(checkpoint, tmp_path):
    image = np.full((120, 120, 3), 230, np.uint8)
    disc(image, (30, 30), 8, 20)
    disc(image, (90, 90), 8, 110)  # score 0.86
    Image.fromarray(image).save(tmp_path / "c.png")
    settings = os.path.join(os.path.dirname(checkpoint), "detection.json")
    with open(settings, "w") as fh:
        json.dump({"score_threshold": 0.9, "pixel_threshold": 0.5}, fh)
    try:
        assert (
            main(
                [
                    "predict",
                    str(tmp_path / "c.png"),
                    "--checkpoint",
                    checkpoint,
                    "--out",
                    str(tmp_path / "o"),
                    "--mpp",
                    "0.25",
                ]
            )
            == 0
        )
    finally:
        os.remove(settings)
    with open(tmp_path / "o" / "counts.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["count"] == "1" and "score >= 0.9 (detection.json of" in row["settings"]


def test_predict_without_a_checkpoint_uses_the_shipped_mitosis_weights_and_their_settings(tmp_path, capsys):
    Image.fromarray(np.full((64, 64, 3), 220, np.uint8)).save(tmp_path / "x.png")
    assert (
        main(["predict", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--tile", "64", "--mpp", "0.25"]) == 0
    )
    # the shipped figure classifier rescores the candidates, at the settings chosen for its scores
    entry = weights_entry("unet", "mitosis")
    settings = {**entry["detection"], **entry["rescorer"]["detection"]}
    out = capsys.readouterr().out
    # the settings in the order they apply, and what chose them
    views = "8-fold averaged map" if settings["tta"] else "single-view map"
    assert (
        f"{views}, pixel probability > {settings['pixel_threshold']:g}, figures >= "
        f"{settings['min_area_um2']:g} um^2, rescored by the figure classifier, score >= "
        f"{settings['score_threshold']:.4g} (card of unet/mitosis, figure classifier)"
    ) in out
    with open(tmp_path / "o" / "counts.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["count"] == "0"  # blank glass has no mitosis


def test_predict_without_images_fails_clearly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--checkpoint", "x.keras", "--out", str(tmp_path / "o")]) == 2
    assert "No images" in capsys.readouterr().err


def test_detection_scoring_against_points_and_mask_centroids():
    model = darkness_model()
    image = np.full((100, 100, 3), 230, np.uint8)
    disc(image, (20, 20), 6, 20)
    disc(image, (70, 70), 6, 20)
    mask = np.zeros((100, 100), np.uint8)
    mask[65:76, 65:76] = 1
    examples = [
        # truth 3 px from the first figure (1.5 um at 0.5 um/px) and one far from both: tp 1, fp 1, fn 1
        {"image": image, "points": np.array([[23, 20], [20, 90]], np.float32), "mpp": np.float32(0.5)},
        # no points: the mask's component centroid (70, 70) is the truth: tp 1, fp 1
        {"image": image, "mask": mask},
    ]
    result = evaluate_detection(model, examples, mpp=0.5, tile=64)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 2, 1)
    assert result["f1"] == pytest.approx(4 / 7) and result["truth"] == "points and mask centroids"
    # a 1 um radius (2 px) misses the truth 3 px away
    strict = evaluate_detection(model, examples[:1], mpp=0.5, tile=64, match_distance_um=1.0)
    assert (strict["tp"], strict["fp"], strict["fn"]) == (0, 2, 2)


def test_evaluate_reports_detection_next_to_pixel_metrics(checkpoint, capsys):
    from mitoseg_tf.data.sources import load_source

    code = main(["evaluate", checkpoint, "--num-examples", "2", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Dice, mitosis class" in out and "Detection on whole images (true centres: mask centroids" in out
    # the printed row equals a direct call on the same tiles at the synthetic set's 0.5 um/px
    expected = evaluate_detection(darkness_model(), load_source("synthetic", "test", num_examples=2), mpp=0.5)
    row = next(
        line for line in out.splitlines() if line.startswith("| ") and line.count("|") == 7 and "precision" not in line
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert [int(c) for c in cells[3:]] == [expected["tp"], expected["fp"], expected["fn"]]
    assert float(cells[2]) == pytest.approx(expected["f1"], abs=1e-4)


def test_predict_with_shipped_weights(tmp_path, capsys):
    image = np.full((64, 64, 3), 225, np.uint8)
    image[20:30, 20:30] = (70, 40, 120)  # one dark nucleus-like blob
    Image.fromarray(image).save(tmp_path / "n.png")
    at = ["--mpp", "0.25"]
    assert (
        main(
            [
                "predict",
                str(tmp_path / "n.png"),
                "--weights",
                "unet/monuseg",
                "--out",
                str(tmp_path / "o"),
                "--tile",
                "64",
            ]
            + at
        )
        == 0
    )
    with open(tmp_path / "o" / "counts.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["image"].endswith("n.png") or row["image"] == "n"
    assert main(["predict", str(tmp_path / "n.png"), "--weights", "unet/nope", "--out", str(tmp_path / "o")] + at) == 2
    assert (
        "No shipped weights 'unet/nope'; shipped (model/tag): mcsa_unet/monuseg, unet/mitosis, unet/mitosis_v1, unet/monuseg"
        in capsys.readouterr().err
    )
    assert (
        main(
            [
                "predict",
                str(tmp_path / "n.png"),
                "--weights",
                "unet/monuseg",
                "--checkpoint",
                "x.keras",
                "--out",
                str(tmp_path / "o"),
            ]
            + at
        )
        == 2
    )
    assert "either a checkpoint (--checkpoint) or shipped weights (--weights), not both" in capsys.readouterr().err


@pytest.mark.parametrize("flag, averaged", [([], True), (["--no-tta"], False)])
def test_predict_averages_over_symmetries_when_the_thresholds_were_chosen_that_way(tmp_path, flag, averaged):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model = corner_reader()  # its map moves under a flip, so averaged and plain maps differ
    model.save(run_dir / "best.keras")
    (run_dir / "detection.json").write_text(json.dumps({"score_threshold": 0.0, "pixel_threshold": 0.5, "tta": True}))
    image = np.full((96, 96, 3), 230, np.uint8)
    disc(image, (48, 48), 10, 20)
    Image.fromarray(image).save(tmp_path / "d.png")
    args = [
        "predict",
        str(tmp_path / "d.png"),
        "--checkpoint",
        str(run_dir / "best.keras"),
        "--out",
        str(tmp_path / "o"),
        "--mpp",
        "0.25",
    ]
    assert main(args + ["--tile", "64"] + flag) == 0
    written = np.asarray(Image.open(tmp_path / "o" / "d_probability.png")).astype(int)
    references = {
        tta: np.round(predict_image(model, image, tile=64, tta=tta) * 255).astype(int) for tta in (True, False)
    }
    assert np.abs(references[True] - references[False]).max() > 100
    assert np.abs(written - references[averaged]).max() <= 1


@pytest.fixture
def shipped_with_rescorer(tmp_path, monkeypatch):
    """Tiny "unet/mitosis" weights whose own settings keep nothing, and a classifier that says 0.7 to every window.

    The classifier's card takes every pixel above 0 as candidate (one blob covering the image) and keeps
    scores >= 0.6, so with rescoring the count is 1, without it 0.
    """
    from mitoseg_tf.models.figure_classifier import build_figure_classifier
    from mitoseg_tf.zoo import build, shipping, weights_card

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    shipping.save_float16_weights(
        build("unet", base_filters=4, input_shape=(None, None, 3)), str(weights_dir / "u.weights.h5")
    )
    detection = {"pixel_threshold": 0.5, "score_threshold": 1.0, "min_area_um2": 0.0, "tta": False}
    manifest = {
        "unet/mitosis": {
            "file": "u.weights.h5",
            "arguments": {"base_filters": 4},
            "threshold": 0.5,
            "detection": detection,
        }
    }
    (weights_dir / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(weights_card, "WEIGHTS_DIR", str(weights_dir))
    classifier = build_figure_classifier(window=16, widths=(4, 8))
    for layer in classifier.layers:
        if layer.weights:
            layer.set_weights([np.zeros(w.shape, "float32") for w in layer.weights])
    classifier.get_layer("mitosis").set_weights([np.zeros((8, 1), "float32"), np.array([np.log(0.7 / 0.3)], "float32")])
    rescoring = {"pixel_threshold": 0.0, "min_area_um2": 0.0, "score_threshold": 0.6}
    shipping.ship_rescorer(classifier, "unet", "mitosis", detection=rescoring, training="toy")
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(tmp_path / "x.png")
    return tmp_path


@pytest.mark.parametrize(
    "flags, count, source",
    [
        ([], 1, "(card of unet/mitosis, figure classifier)"),
        (["--score-threshold", "0.8"], 0, "(card of unet/mitosis, figure classifier; score_threshold given)"),
        (["--no-rescore"], 0, "(card of unet/mitosis)"),
    ],
)
def test_predict_rescores_candidates_with_the_classifier_shipped_beside_the_weights(
    shipped_with_rescorer, capsys, flags, count, source
):
    out_dir = shipped_with_rescorer / "o"
    assert (
        main(
            ["predict", str(shipped_with_rescorer / "x.png"), "--out", str(out_dir), "--tile", "64", "--mpp", "0.25"]
            + flags
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert source in printed and ("rescored by the figure classifier" in printed) is ("--no-rescore" not in flags)
    with open(out_dir / "counts.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["count"] == str(count)
    if count:
        (feature,) = json.loads((out_dir / "x.geojson").read_text())["features"]
        assert feature["properties"]["score"] == pytest.approx(0.7, abs=1e-3)  # the classifier's, not the map's


def test_rescoring_needs_a_classifier(shipped_with_rescorer, capsys, checkpoint):
    args = [
        "predict",
        str(shipped_with_rescorer / "x.png"),
        "--out",
        str(shipped_with_rescorer / "o"),
        "--rescore",
        "--mpp",
        "0.25",
    ]
    assert main(args + ["--checkpoint", checkpoint]) == 2
    assert "rescoring (--rescore) needs shipped weights with a figure classifier" in capsys.readouterr().err


def test_a_folder_with_an_unreadable_image_finishes_the_others_and_says_so(checkpoint, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    image = np.full((64, 64, 3), 230, np.uint8)
    disc(image, (30, 30), 8, 20)
    Image.fromarray(image).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png at all")
    Image.fromarray(image).save(folder / "c.png")
    assert (
        main(
            [
                "predict",
                str(folder),
                "--checkpoint",
                checkpoint,
                "--out",
                str(tmp_path / "o"),
                "--tile",
                "64",
                "--mpp",
                "0.25",
            ]
        )
        == 1
    )
    with open(tmp_path / "o" / "counts.csv", newline="") as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    assert rows["a.png"]["count"] == rows["c.png"]["count"] == "1"
    assert rows["b.png"]["status"].startswith("failed:") and "cannot decode" in rows["b.png"]["status"]
    assert not (tmp_path / "o" / "b.geojson").exists()
    assert "2 image(s) predicted, 1 failed" in capsys.readouterr().out


def test_nucleus_weights_report_nuclei(tmp_path, capsys):
    image = np.full((64, 64, 3), 225, np.uint8)
    image[20:30, 20:30] = (70, 40, 120)
    Image.fromarray(image).save(tmp_path / "n.png")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "n.png"),
                "--weights",
                "unet/monuseg",
                "--out",
                str(tmp_path / "o"),
                "--tile",
                "64",
                "--mpp",
                "0.25",
            ]
        )
        == 0
    )
    with open(tmp_path / "o" / "counts.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["object_class"] == "Nucleus" and row["per_10hpf"] == ""
    printed = capsys.readouterr().out
    assert f"n.png: {row['count']} nuclei" in printed and "mitos" not in printed.split("\n", 1)[1]
    for feature in json.loads((tmp_path / "o" / "n.geojson").read_text())["features"]:
        assert feature["properties"]["classification"]["name"] == "Nucleus"


# --- the pixel size: given, read from the file, or one clear error ------------------------------------------------


def test_predict_reads_the_pixel_size_the_file_states_and_says_so_in_every_output(checkpoint, tmp_path, capsys):
    import tifffile

    image = np.full((64, 64, 3), 230, np.uint8)
    disc(image, (30, 30), 8, 20)
    tifffile.imwrite(tmp_path / "t.tif", image, resolution=(20000, 20000), resolutionunit="CENTIMETER")  # 0.5 um/px
    Image.fromarray(image).save(tmp_path / "p.png", dpi=(101600, 101600))  # pHYs 4e6 px/m: 0.25 um/px
    out = tmp_path / "o"
    for name in ("t.tif", "p.png"):
        assert (
            main(["predict", str(tmp_path / name), "--checkpoint", checkpoint, "--out", str(out), "--tile", "64"]) == 0
        )
    with open(out / "counts.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))  # the last run's: p.png
    assert (row["mpp"], row["mpp_source"]) == ("0.25", "PNG pHYs")
    geojson = json.loads((out / "t.geojson").read_text())
    assert (geojson["mpp"], geojson["mpp_source"]) == (0.5, "TIFF tags")
    printed = capsys.readouterr().out
    assert (
        "t.tif: 1 mitoses" in printed
        and "at 0.5 um/px (TIFF tags)" in printed
        and "at 0.25 um/px (PNG pHYs)" in printed
    )


def test_a_given_mpp_wins_and_a_contradicting_file_is_warned_of_once(checkpoint, tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((64, 64, 3), 230, np.uint8)).save(folder / name, dpi=(50800, 50800))  # 0.5 um/px
    args = [
        "predict",
        str(folder),
        "--checkpoint",
        checkpoint,
        "--out",
        str(tmp_path / "o"),
        "--tile",
        "64",
        "--mpp",
        "0.25",
    ]
    with caplog.at_level("WARNING", logger="mitoseg_tf"):
        assert main(args) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        "--mpp 0.25 um/px is used for every image, but 2 of them state another" in warning
        and "0.5 um/px (PNG pHYs)" in warning
    )
    with open(tmp_path / "o" / "counts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["mpp"] for r in rows] == ["0.25", "0.25"]
    assert rows[0]["mpp_source"] == "--mpp; the file states 0.5 um/px (PNG pHYs)"


def test_an_image_without_a_pixel_size_stops_before_the_network_loads_with_one_message_naming_mpp(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((16, 16, 3), 230, np.uint8)).save(folder / name)  # no pHYs
    # no such checkpoint: the pixel size is checked first
    assert main(["predict", str(folder), "--checkpoint", "nope.keras", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the pixel size of 2 of 2 images is unknown" in err
    assert (
        "a.png states no pixel size" in err and "give it with --mpp MICRONS_PER_PIXEL (0.25 at 40x, 0.5 at 20x)" in err
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e6"])
def test_an_absurd_mpp_is_one_clear_error_naming_its_source(checkpoint, tmp_path, capsys, value):
    Image.fromarray(np.full((16, 16, 3), 230, np.uint8)).save(tmp_path / "x.png")
    args = ["predict", str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]
    assert main(args + ["--checkpoint", checkpoint, "--mpp", value]) == 2
    err = capsys.readouterr().err
    assert f"--mpp: {float(value)!r} is not a plausible pixel size; accepted: 0.05 to 10 microns per pixel" in err
    # the same value in a run's detection.json (the detector's training resolution)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    darkness_model().save(run_dir / "best.keras")
    (run_dir / "detection.json").write_text(json.dumps({"score_threshold": 0.5, "mpp": float(value)}))
    assert main(args + ["--checkpoint", str(run_dir / "best.keras"), "--mpp", "0.25"]) == 2
    err = capsys.readouterr().err
    assert f"detection.json (mpp): {float(value)!r} is not a plausible pixel size; accepted: 0.05 to 10" in err
