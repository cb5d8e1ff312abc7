import csv
import os

import numpy as np
import pytest
from slide_testing import FakeDetector, blob_canvas, write_pyramid

from mitoseg_tf.cli.main import main, parser
from mitoseg_tf.detector import Detector


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
    code = main(["slide", str(folder), "--out", str(out), "--tile", "256", "--weights", "unet/mitosis", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 1
    assert seen["weights"] == "unet/mitosis" and seen["tile"] is None  # --tile is the slide's, not the network's
    assert "good.svs: 2 mitoses" in printed and "bad.svs: failed" in printed and "1 failed" in printed
    with open(out / "summary.csv") as fh:
        rows = {r["slide"]: r for r in csv.DictReader(fh)}
    assert rows["good.svs"]["status"] == "ok" and rows["bad.svs"]["status"].startswith("failed")
    assert os.path.isfile(out / "good.svs.geojson") and not os.path.exists(out / "bad.svs.geojson")
    assert main(["slide", str(folder / "good.svs"), "--out", str(out), "--no-progress"]) == 0


def test_plain_image_without_mpp_fails_with_the_reason(tmp_path, monkeypatch, capsys):
    from PIL import Image

    path = tmp_path / "field.png"
    Image.fromarray(np.full((100, 100, 3), 200, np.uint8)).save(path)
    monkeypatch.setattr(Detector, "load", staticmethod(lambda **options: FakeDetector()))
    assert main(["slide", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    assert "--mpp" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["slide", str(path)])  # --out is required
