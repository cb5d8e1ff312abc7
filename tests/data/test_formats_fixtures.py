"""Readers of the formats with no real files here, on fixtures written in exactly their shape."""

import numpy as np
import pytest
from format_fixtures import atypia14_frames, folder_layout, midog_small, mitos12_pixels, tupac16_frames

from mitoseg_tf.data.formats import load_example, read_records


def _by_id(records):
    return {r.id: r for r in records}


def test_folder_pairs_by_name_and_masks_give_centroids(tmp_path):
    masks = folder_layout(tmp_path)
    records = _by_id(read_records("folder", str(tmp_path)))
    assert sorted(records) == ["tile0", "tile1", "tile2"]
    for name, expected in masks.items():
        ex = load_example(records[name])
        np.testing.assert_array_equal(ex["mask"], expected)
        rows, cols = np.nonzero(expected)
        np.testing.assert_allclose(ex["points"], [[rows.mean(), cols.mean()]])


def test_folder_slide_pattern_groups_images(tmp_path):
    folder_layout(tmp_path)
    records = read_records("folder", str(tmp_path), slide_pattern=r"(tile)\d")
    assert {r.slide for r in records} == {"tile"}
    with pytest.raises(ValueError, match=r"slide_pattern 'tile\(\[0-1\]\)' does not match the file name 'tile2'"):
        read_records("folder", str(tmp_path), slide_pattern=r"tile([0-1])")


def test_mitos12_pixel_csv_gives_pixel_masks(tmp_path):
    mitos12_pixels(tmp_path)
    records = _by_id(read_records("mitos12", str(tmp_path)))
    ex = load_example(records["A00_00"])
    expected = np.zeros((60, 70), np.uint8)
    expected[10, 5] = expected[10, 6] = expected[40, 50] = 1  # csv is x,y: x = column
    np.testing.assert_array_equal(ex["mask"], expected)
    np.testing.assert_allclose(ex["points"], [[10, 5.5], [40, 50]])
    assert ex["slide"] == "A00" and ex["mpp"] == pytest.approx(0.2456)
    empty = load_example(records["A01_02"])
    assert empty["mask"].sum() == 0 and empty["points"].shape == (0, 2)


def test_atypia14_frame_csvs(tmp_path):
    atypia14_frames(tmp_path)
    records = _by_id(read_records("mitos_atypia14", str(tmp_path)))
    a, h = records["A03_00Aa"], records["H05_01Bc"]
    np.testing.assert_array_equal(a.points, [[30, 20], [60, 70]])  # x,y,confidence -> (row, col)
    np.testing.assert_array_equal(a.negatives, [[50, 40]])
    assert a.mpp == pytest.approx(0.2455) and h.mpp == pytest.approx(0.2273)
    assert a.slide == "A03" and h.points.shape == (0, 2)
    confident = _by_id(read_records("mitos_atypia14", str(tmp_path), min_confidence=0.6))
    np.testing.assert_array_equal(confident["A03_00Aa"].points, [[30, 20]])
    ex = load_example(a, radius_um=2.0)
    assert ex["mask"][30, 20] == 1 and ex["mask"][60, 70] == 1 and ex["mask"][50, 40] == 0


def test_tupac16_row_col_csvs(tmp_path):
    tupac16_frames(tmp_path)
    records = _by_id(read_records("tupac16", str(tmp_path)))
    np.testing.assert_array_equal(records["01_01"].points, [[10, 20], [30, 40]])
    np.testing.assert_array_equal(records["01_01"].negatives, [[45, 5]])
    assert records["02_05"].points.shape == (0, 2)  # an empty CSV is a frame without mitoses
    assert records["01_01"].slide == "01"


def test_midog_boxes_become_centres_and_missing_images_are_skipped(tmp_path, caplog):
    midog_small(tmp_path)
    records = _by_id(read_records("midog", str(tmp_path)))
    assert sorted(records) == ["001", "002"]
    assert "skipped 1 images listed in the JSON" in caplog.text
    np.testing.assert_array_equal(records["001"].points, [[45, 35]])
    np.testing.assert_array_equal(records["001"].negatives, [[65, 85]])
    assert records["002"].tumour_type == "canine lymphoma"
