"""The pictures ``mitoseg predict`` writes for a real 2084 px MITOS-2012 field: sized for a screen, numbered alike.

Figures are the field's annotated mitoses with hand-set, partly equal scores
(no network: drawing is what is tested), written by ``write_prediction``.
Every check reads the written files (figures CSV, labels JSON, JPEGs) and
compares them with the figures given, not with the drawing code's own sums.
"""

import csv
import json
import os
import re
import sys
import types

import numpy as np
import pytest
from PIL import Image

from mitoseg_tf.detection.figures import Figure
from mitoseg_tf.detector.outputs import write_prediction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from real_data import shared_data  # noqa: E402

FIELD = "A01_09"
MPP = 0.2456  # MITOS-2012 scanner A
# Ties on purpose: with "#rank score" alone two crops of equal score could not be told apart.
SCORES = (0.91, 0.8, 0.8, 0.74, 0.6, 0.6, 0.6, 0.52, 0.5, 0.45)
OVERVIEW_LIMIT_BYTES = 1_500_000
NEAR_PX = 40  # how far an overview label may start from its figure: ring radius plus a gap, with room


def _square(x, y, half=10):
    """A closed (x, y) ring around the pixel (row y, col x), as GeoJSON needs an outline."""
    x0, y0, x1, y1 = int(x) - half, int(y) - half, int(x) + half, int(y) + half
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = shared_data().need("mitos12_dev")
    image = np.asarray(Image.open(os.path.join(root, "images", f"{FIELD}.jpg")).convert("RGB"))
    with open(os.path.join(root, "mitoses.csv"), newline="") as fh:
        points = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(fh) if r["image"] == FIELD]
    assert len(points) >= 3, f"{FIELD} should hold several annotated mitoses"
    figures = [
        Figure(
            centroid=(y, x),
            area_px=300,
            area_um2=300 * MPP**2,
            score=SCORES[i % len(SCORES)],
            polygon=_square(x, y),
            bbox=(int(y) - 10, int(x) - 10, int(y) + 10, int(x) + 10),
        )
        for i, (x, y) in enumerate(points)
    ]
    prediction = types.SimpleNamespace(
        figures=tuple(figures), mpp=MPP, mpp_source="mpp", object_class="Mitosis", probability=None
    )
    out = tmp_path_factory.mktemp("pictures")
    paths = write_prediction(prediction, image, str(out), FIELD)
    with open(paths["labels"]) as fh:
        labels = json.load(fh)
    with open(paths["figures_csv"], newline="") as fh:
        rows = {int(r["number"]): r for r in csv.DictReader(fh)}
    return types.SimpleNamespace(image=image, figures=figures, paths=paths, labels=labels, rows=rows)


def test_the_overview_is_a_screen_sized_jpeg_and_the_overlay_is_compressed(written):
    assert os.path.getsize(written.paths["overview"]) <= OVERVIEW_LIMIT_BYTES
    with Image.open(written.paths["overview"]) as overview:
        assert overview.format == "JPEG" and max(overview.size) <= 1600
    with Image.open(written.paths["overlay"]) as overlay:
        assert overlay.format == "JPEG" and overlay.size == written.image.shape[1::-1]
    # The PNG this replaced was 8.5 MB for this field.
    assert os.path.getsize(written.paths["overlay"]) < 3_000_000


def test_the_figures_csv_numbers_every_given_figure_in_xy(written):
    assert sorted(written.rows) == list(range(1, len(written.figures) + 1)) and written.labels["count"] == len(
        written.figures
    )
    given = sorted(
        (round(col + 0.5, 2), round(row + 0.5, 2), f.score) for f in written.figures for row, col in [f.centroid]
    )
    listed = sorted((float(r["x_px"]), float(r["y_px"]), float(r["score"])) for r in written.rows.values())
    assert np.allclose(np.array(given), np.array(listed), atol=0.01)
    for row in written.rows.values():
        assert float(row["x_um"]) == pytest.approx(float(row["x_px"]) * MPP, abs=0.01)


def test_each_gallery_label_names_a_number_drawn_on_the_overview_at_its_figure(written):
    gallery = written.labels["gallery"]["labels"]
    overview = written.labels["overview"]
    drawn = {label["number"]: label for label in overview["labels"]}
    assert len(gallery) == len(written.figures) and sorted(drawn) == sorted(label["number"] for label in gallery)
    scale = np.array(overview["size"], float) / written.image.shape[1::-1]
    with Image.open(written.paths["overview"]) as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(int)
        plain = np.asarray(Image.fromarray(written.image).resize(picture.size, Image.Resampling.LANCZOS)).astype(int)
    for crop in gallery:
        match = re.fullmatch(r"#(\d+) (\d\.\d\d)\nx (\d+), y (\d+)", crop["text"])
        assert match, crop["text"]
        number, score, x, y = int(match[1]), float(match[2]), int(match[3]), int(match[4])
        row = written.rows[number]
        assert number == crop["number"] and score == pytest.approx(float(row["score"]), abs=0.005)
        assert abs(x - float(row["x_px"])) <= 0.5 and abs(y - float(row["y_px"])) <= 0.5
        # On the overview the same number is written beside the same figure.
        label = drawn[number]
        assert label["text"].startswith(f"#{number} ")
        point = np.array([float(row["x_px"]), float(row["y_px"])]) * scale
        assert np.allclose([label["x"], label["y"]], point, atol=1.0)
        x0, y0, x1, y1 = label["box"]
        gap = np.hypot(max(x0 - point[0], 0, point[0] - x1), max(y0 - point[1], 0, point[1] - y1))
        assert gap <= NEAR_PX, f"#{number} is written {gap:.0f} px from its figure"
        box = (slice(int(y0), int(np.ceil(y1))), slice(int(x0), int(np.ceil(x1))))
        assert np.abs(pixels[box] - plain[box]).mean() > 20, f"nothing drawn where #{number} should be"
