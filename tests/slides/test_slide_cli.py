import csv
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from slide_testing import FakeDetector, blob_canvas, write_pyramid
from time_limits import Budget

from mitoseg_tf.cli.main import main, parser
from mitoseg_tf.detection.counting import DEFAULT_HPF10_AREA_MM2
from mitoseg_tf.detector import Detector
from mitoseg_tf.slides import predict_slides

# `mitoseg slide ARGS` with the dark-blob detector in place of the network; HANG_AFTER=N: it hangs after N tiles.
RUN_CLI = f"""
import os, sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from slide_testing import FakeDetector
from mitoseg_tf.cli.main import main
from mitoseg_tf.detector import Detector
hang = os.environ.get("HANG_AFTER")
Detector.load = staticmethod(lambda **options: FakeDetector(hang_after=int(hang) if hang else None))
sys.exit(main(sys.argv[1:]))
"""


def test_help_lists_every_option_with_help():
    sub = next(a for a in parser()._actions if a.dest == "command").choices["slide"]
    for action in sub._actions:
        assert action.help, action.dest
    text = sub.format_help()
    for flag in ("--out", "--weights", "--checkpoint", "--mpp", "--resume", "--tile", "--hpf10-area-mm2"):
        assert flag in text


def test_folder_with_a_bad_slide_exits_1_and_lists_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "slides"
    folder.mkdir()
    image = blob_canvas(600, 700, [(300, 300), (420, 310)], tissue_boxes=[(50, 50, 650, 550)])
    write_pyramid(str(folder / "good.svs"), image, downsamples=(1, 4))
    (folder / "bad.svs").write_text("not a slide")
    seen = {}

    def load(**options):
        seen.update(options)
        return FakeDetector()

    monkeypatch.setattr(Detector, "load", staticmethod(load))
    out = tmp_path / "out"
    code = main(
        ["slide", str(folder), "--out", str(out), "--tile", "256", "--weights", "unet/mitosis", "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert seen["weights"] == "unet/mitosis" and seen["tile"] is None  # --tile is the slide's, not the network's
    assert "good.svs: 2 mitoses" in printed and "bad.svs: failed" in printed and "1 failed" in printed
    with open(out / "summary.csv") as fh:
        rows = {r["slide"]: r for r in csv.DictReader(fh)}
    assert rows["good.svs"]["status"] == "ok" and rows["bad.svs"]["status"].startswith("failed")
    assert rows["good.svs"]["hpf10_area_mm2"] == f"{DEFAULT_HPF10_AREA_MM2:.6g}"  # the library's, not a copy
    assert os.path.isfile(out / "good.svs.geojson") and not os.path.exists(out / "bad.svs.geojson")
    assert main(["slide", str(folder / "good.svs"), "--out", str(out), "--no-progress"]) == 0
    # A later run into the folder replaces its slides' rows and keeps the others'.
    rows = [(r["slide"], r["status"][:6]) for r in read_rows(out / "summary.csv")]
    assert rows == [("bad.svs", "failed"), ("good.svs", "ok")]


def test_plain_image_without_mpp_fails_with_the_reason(tmp_path, monkeypatch, capsys):
    from PIL import Image

    path = tmp_path / "field.png"
    Image.fromarray(np.full((100, 100, 3), 200, np.uint8)).save(path)
    monkeypatch.setattr(Detector, "load", staticmethod(lambda **options: FakeDetector()))
    assert main(["slide", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    assert "--mpp" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["slide", str(path)])  # --out is required


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sigkill_mid_slide_then_resume_gives_an_uninterrupted_runs_figures(tmp_path):
    """Two slides of one stem (a.svs, a.tif): the first's summary row survives a kill in the second, files stay apart."""
    folder = tmp_path / "slides"
    folder.mkdir()
    tissue = [(32, 32, 1000, 1000)]
    write_pyramid(
        str(folder / "a.svs"),
        blob_canvas(1024, 1024, [(200, 200), (700, 300)], tissue_boxes=tissue),
        downsamples=(1, 4),
    )
    write_pyramid(
        str(folder / "a.tif"),
        blob_canvas(1024, 1024, [(300, 600), (500, 500), (800, 900)], tissue_boxes=tissue),
        downsamples=(1, 4),
    )
    options = ["--tile", "256", "--margin", "32", "--no-progress", "--state-every-s", "0"]
    reference = predict_slides(
        FakeDetector(), str(folder), out_dir=str(tmp_path / "whole"), tile=256, margin=32, progress=False
    )
    first_tiles = reference.results[0].tiles["with_tissue"]
    out = tmp_path / "out"
    command = [sys.executable, "-c", RUN_CLI, "slide", str(folder), "--out", str(out), *options]
    budget = Budget()
    killed = subprocess.Popen(
        command,
        env={**os.environ, "HANG_AFTER": str(first_tiles + 3)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    state = out / "a.tif.resume.json"
    try:
        while True:  # it hangs after 3 tiles of a.tif, each saved as it ends
            assert killed.poll() is None, killed.stdout.read().decode()
            if state.is_file() and len(json.loads(state.read_text())["done"]) == 3:
                break
            assert budget.left() > 1, "the run never reached a.tif"
            time.sleep(0.05)
    finally:
        killed.kill()  # SIGKILL: no handler, no finally, nothing flushed
        killed.wait()
    assert [(r["slide"], r["status"]) for r in read_rows(out / "summary.csv")] == [("a.svs", "ok")]
    assert not (out / "a.tif.geojson").exists()
    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=budget.left())
    assert again.returncode == 0, again.stdout + again.stderr
    with open(out / "a.tif_summary.json") as fh:
        assert json.load(fh)["tiles"]["resumed"] == 3
    rows = read_rows(out / "summary.csv")
    assert [(r["slide"], r["count"]) for r in rows] == [("a.svs", "2"), ("a.tif", "3")]
    for name in ("a.svs", "a.tif"):
        assert (out / f"{name}_figures.csv").read_text() == (tmp_path / "whole" / f"{name}_figures.csv").read_text()
