"""Every reader that has real files in ../shared/data, on those files (skipped when absent; failed under MITOSEG_REQUIRE_DATA=1)."""

import os

import numpy as np
import pytest

from mitoseg_tf.data.formats import load_example, mask_centroids, read_records
from mitoseg_tf.data.formats.amibr import read_table
from mitoseg_tf.data.formats.midog import read_database
from mitoseg_tf.data.formats.mitos_atypia14 import read_point_list
from mitoseg_tf.data.formats.monuseg import read_xml
from mitoseg_tf.data.formats.record import _polygons_to_mask
from mitoseg_tf.data.formats.tupac16 import read_points
from mitoseg_tf.data.images import read_label_image


def test_monuseg_tif_and_two_channel_masks(shared_data):
    records = read_records("monuseg", shared_data.need("monuseg", "train"))
    assert len(records) == 30
    assert len({r.slide for r in records}) == 30 and all(r.slide.startswith("TCGA-") for r in records)
    ex = load_example(records[0])
    assert ex["image"].shape == (1000, 1000, 3) and ex["image"].dtype == np.uint8
    assert set(np.unique(ex["mask"])) == {0, 1}
    assert len(ex["points"]) > 100  # nuclei, from the mask's connected components


def test_monuseg_xml_polygons_rasterise_to_the_given_mask(shared_data):
    polygons, mpp = read_xml(shared_data.need("formats", "monuseg_xml", "TCGA-21-5784-01Z-00-DX1.xml"))
    given = read_label_image(shared_data.need("monuseg", "train", "masks", "TCGA-21-5784-01Z-00-DX1.png"))
    drawn = _polygons_to_mask(polygons, given.shape)
    dice = 2 * (drawn & given).sum() / (drawn.sum() + given.sum())
    assert mpp == pytest.approx(0.2527) and len(polygons) == 398
    assert dice > 0.9999 and abs(int(drawn.sum()) - int(given.sum())) <= 5


def test_mitos12_points_on_their_jpegs(shared_data):
    records = read_records("mitos12", shared_data.need("mitos12_dev"))
    assert [r.id for r in records] == ["A00_00", "A00_08", "A01_04", "A01_06", "A01_09"]
    assert sum(len(r.points) for r in records) == 32
    first = {r.id: r for r in records}["A00_00"]
    # mitoses.csv's first row: A00_00,2008,929 (x = column, y = row)
    assert [929.0, 2008.0] in first.points.tolist()
    ex = load_example(first, radius_um=4.0)
    assert ex["image"].shape == (2084, 2084, 3) and ex["mpp"] == pytest.approx(0.2456)
    assert ex["mask"][929, 2008] == 1
    np.testing.assert_allclose(mask_centroids(ex["mask"]), ex["points"][np.lexsort(ex["points"].T[::-1])], atol=0.5)


def test_amibr_crops_and_table(shared_data):
    root = shared_data.need("amibr")
    records = read_records("amibr", root)
    assert len(records) == 1800
    assert sum(r.label == "atypical" for r in records) == 400
    assert len(read_table(os.path.join(root, "AMI-BR.csv"))) == 3720
    ex = load_example(records[0])
    assert ex["image"].shape == (128, 128, 3)
    np.testing.assert_array_equal(ex["points"], [[63.5, 63.5]])
    assert ex["mask"][63, 63] == 1 and ex["mask"][0, 0] == 0


def test_midog_plus_plus_database(shared_data):
    db = read_database(shared_data.need("formats", "midogpp", "MIDOG++.json"))
    assert len(db) == 553
    figures = sum(len(v["points"]) for v in db.values())
    negatives = sum(len(v["negatives"]) for v in db.values())
    assert figures + negatives == 26286
    entry = db["001.tiff"]
    assert entry["width"] == 7215 and entry["height"] == 5412 and entry["tumour_type"] == "human breast cancer"
    # first annotation: bbox [4336, 346, 4386, 396], category 2 -> hard negative centred at (row 371, col 4361)
    assert [371.0, 4361.0] in entry["negatives"].tolist()
    for v in db.values():
        pts = np.concatenate([v["points"], v["negatives"]])
        assert (pts[:, 0] <= v["height"]).all() and (pts[:, 1] <= v["width"]).all()


def test_tupac16_alternative_label_csvs(shared_data):
    root = shared_data.need("formats", "tupac16_alt_labels", "TUPAC_AL")
    files = sorted(
        os.path.join(d, f) for d, _, names in os.walk(os.path.join(root, "mitoses_ground_truth")) for f in names
    )
    assert files
    total = 0
    for path in files:
        points = read_points(path)
        with open(path) as fh:
            assert len(points) == sum(1 for line in fh if line.strip())
        total += len(points)
    assert total > 0
    first = read_points(os.path.join(root, "mitoses_ground_truth", "04", "08.csv"))
    np.testing.assert_array_equal(first[0], [108, 88])


def test_mitos_atypia14_point_list(shared_data):
    points = read_point_list(shared_data.need("formats", "mitos_atypia14", "points_validation.txt"))
    assert sum(len(v) for v in points.values()) == 163
    # "mitosis14_validation/A18/A18_06Ca 711 731": x 711, y 731 -> (row 731, col 711)
    assert [731.0, 711.0] in points["A18_06Ca"].tolist()
