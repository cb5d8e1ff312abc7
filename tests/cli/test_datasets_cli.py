"""``mitoseg datasets list | inspect | prepare`` and ``mitoseg train --data NAME --data-dir DIR``."""

import json
import os
import sys

import pytest

from mitoseg_tf.cli.main import main
from mitoseg_tf.data.formats import FORMATS

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data"))
from format_fixtures import folder_layout  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_list_names_every_format(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name, fmt in FORMATS.items():
        assert f"| {name} | {fmt.DESCRIPTION} |" in out


def test_inspect_prints_counts_and_writes_a_grid(tmp_path, capsys):
    folder_layout(tmp_path / "raw", count=4)
    out_png = tmp_path / "grid.png"
    assert main(["datasets", "inspect", "folder", "--data-dir", str(tmp_path / "raw"), "--out", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "Dataset folder: 4 images" in text
    assert "labelled objects: 4 over 4 images (per image mean 1.00, min 1, max 1)" in text
    # each 64x80 mask holds one 10x10 square: 100 / 5120 pixels
    assert f"{100 * 100 / 5120:.3f} % foreground pixels" in text
    assert out_png.read_bytes()[:8] == PNG_MAGIC


def test_prepare_writes_records(tmp_path, capsys):
    folder_layout(tmp_path / "raw", count=3)
    args = ["datasets", "prepare", "folder", "--data-dir", str(tmp_path / "raw"), "--prepared-dir", str(tmp_path / "p")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "folder prepared in" in text and "train 1, validation 1, test 1" in text
    assert any(name.endswith(".tfrecord-00000-of-00001") for _, _, files in os.walk(tmp_path / "p") for name in files)


@pytest.mark.parametrize(
    "args, message",
    [
        (["datasets", "inspect", "mitos2012", "--data-dir", "."], "Unknown dataset 'mitos2012'"),
        (["datasets", "prepare", "monuseg", "--data-dir", "/nonexistent"], "does not exist"),
        (["train", "--data", "synthetic", "--radius-um", "5"], "apply to the public datasets"),
    ],
)
def test_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_train_on_a_folder_dataset(tmp_path):
    folder_layout(tmp_path / "raw", count=6)
    args = [
        "train",
        "--model",
        "unet",
        "--data",
        "folder",
        "--data-dir",
        str(tmp_path / "raw"),
        "--prepared-dir",
        str(tmp_path / "p"),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--base-filters",
        "4",
        "--crop-size",
        "32",
        "--precision",
        "float32",
        "--output-dir",
        str(tmp_path / "runs"),
        "--run-name",
        "r",
    ]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    config = json.loads((tmp_path / "runs" / "r" / "config.json").read_text())
    assert config["data"] == "folder" and config["data_options"] == {"prepared_dir": str(tmp_path / "p")}
    # six one-image slides split 4/1/1; the 64x80 test image is scored as two 64x64 tiles
    assert metrics["test"]["num_images"] == 2
    # the figure-score threshold is chosen on validation and saved beside best.keras
    detection = json.loads((tmp_path / "runs" / "r" / "detection.json").read_text())
    assert detection["score_threshold"] == metrics["detection"]["score_threshold"]
    assert set(detection["test"]) >= {"precision", "recall", "f1"} and detection["truth"]
