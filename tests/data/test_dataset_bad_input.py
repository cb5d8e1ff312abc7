"""The bad-input corpus: each case gives one clear error naming the file and the problem
(or, where skipping is documented, a warning with a count). Nothing is mis-paired."""

import json
import os

import numpy as np
import pytest
from format_fixtures import folder_layout, midog_small, save, tissue, tupac16_frames
from PIL import Image

from mitoseg_tf.data.formats import load_example, read_records
from mitoseg_tf.data.images import read_image, read_label_image


def _one(tmp_path):
    folder_layout(tmp_path, count=1)
    return tmp_path / "images" / "tile0.png", tmp_path / "masks" / "tile0.png"


def test_truncated_image(tmp_path):
    image, _ = _one(tmp_path)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    (rec,) = read_records("folder", str(tmp_path))
    with pytest.raises(ValueError, match=r"tile0\.png: cannot decode the image .*corrupt or truncated"):
        load_example(rec)


def test_not_an_image(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"x\.png: cannot decode"):
        read_image(str(path))


def test_mask_of_a_different_size(tmp_path):
    _, mask = _one(tmp_path)
    save(str(mask), np.zeros((10, 10), np.uint8))
    (rec,) = read_records("folder", str(tmp_path))
    with pytest.raises(ValueError, match=r"tile0\.png: mask is 10x10 \(HxW\) but its image is 64x80"):
        load_example(rec)


def test_missing_mask_and_orphan_mask(tmp_path):
    folder_layout(tmp_path, count=2)
    os.remove(tmp_path / "masks" / "tile1.png")
    with pytest.raises(ValueError, match=r"1 image\(s\) have no mask .*tile1\.png"):
        read_records("folder", str(tmp_path))
    os.remove(tmp_path / "images" / "tile1.png")
    save(str(tmp_path / "masks" / "other.png"), np.zeros((64, 80), np.uint8))
    with pytest.raises(ValueError, match=r"mask\(s\) have no image .*other\.png"):
        read_records("folder", str(tmp_path))


def test_non_binary_mask(tmp_path):
    _, mask = _one(tmp_path)
    values = np.zeros((64, 80), np.uint8)
    values[0, :3] = [1, 2, 3]
    save(str(mask), values)
    with pytest.raises(ValueError, match=r"mask is not binary: values \[0, 1, 2, 3\]; accepted: 0/1 or 0/255"):
        read_label_image(str(mask))


@pytest.mark.parametrize("values", [(0, 1), (0, 255)])
def test_binary_masks_as_grey_rgb_and_grey_alpha(tmp_path, values):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = values[1]
    expected = (mask > 0).astype(np.uint8)
    for name, array in (
        ("grey.png", mask),
        ("rgb.png", np.stack([mask] * 3, -1)),
        ("la.png", np.stack([mask, np.full_like(mask, 255)], -1)),
    ):
        path = tmp_path / name
        Image.fromarray(array, mode="LA" if name == "la.png" else None).save(path)
        np.testing.assert_array_equal(read_label_image(str(path)), expected)


def test_colour_mask_is_refused(tmp_path):
    path = save(
        str(tmp_path / "m.png"),
        np.dstack([np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8) * 255, np.zeros((4, 4), np.uint8)]),
    )
    with pytest.raises(ValueError, match="colour label image"):
        read_label_image(path)


def test_sixteen_bit_rgba_and_grey_images(tmp_path):
    sixteen = tmp_path / "16.png"
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(sixteen)
    with pytest.raises(ValueError, match=r"16\.png: I;16 image .*must be 8-bit RGB"):
        read_image(str(sixteen))
    grey = save(str(tmp_path / "grey.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"grey\.png: greyscale image"):
        read_image(grey)
    rgba = np.dstack([tissue(4, 4), np.full((4, 4), 255, np.uint8)])
    opaque = save(str(tmp_path / "opaque.png"), rgba)
    np.testing.assert_array_equal(read_image(opaque), rgba[..., :3])  # fully opaque: alpha dropped
    rgba[0, 0, 3] = 0
    transparent = save(str(tmp_path / "transparent.png"), rgba)
    with pytest.raises(ValueError, match="transparent.png: RGBA image with transparent pixels"):
        read_image(transparent)


def test_empty_annotation_files(tmp_path):
    tupac16_frames(tmp_path)  # frame 02/05 has an empty CSV: documented as "no mitoses"
    records = {r.id: r for r in read_records("tupac16", str(tmp_path))}
    assert records["02_05"].points.shape == (0, 2)
    midog = tmp_path / "midog"
    midog.mkdir()
    (midog / "MIDOG.json").write_text("")
    with pytest.raises(ValueError, match=r"MIDOG\.json: not valid JSON"):
        read_records("midog", str(midog))
    (midog / "MIDOG.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="lists no images"):
        read_records("midog", str(midog))


def test_points_outside_the_image(tmp_path):
    midog_small(tmp_path)
    db = json.loads((tmp_path / "MIDOG++.json").read_text())
    db["annotations"][0]["bbox"] = [500, 20, 550, 70]  # centre column 525 > width 120
    (tmp_path / "MIDOG++.json").write_text(json.dumps(db))
    records = {r.id: r for r in read_records("midog", str(tmp_path))}
    with pytest.raises(ValueError, match=r"001\.tiff \(points\): point \(row 45, col 525\) lies outside the 100x120"):
        load_example(records["001"])


def test_duplicate_file_names(tmp_path):
    folder_layout(tmp_path, count=1)
    save(str(tmp_path / "images" / "tile0.jpg"), tissue(64, 80))
    with pytest.raises(ValueError, match=r"two images named 'tile0' \(tile0\.jpg and tile0\.png\)"):
        read_records("folder", str(tmp_path))


def test_duplicate_names_in_nested_folders(tmp_path):
    save(str(tmp_path / "a" / "A00_00.bmp"), tissue(10, 10))
    save(str(tmp_path / "b" / "A00_00.bmp"), tissue(10, 10))
    with pytest.raises(ValueError, match="two files named 'A00_00'"):
        read_records("mitos12", str(tmp_path))


def test_empty_and_missing_manual_folders(tmp_path):
    with pytest.raises(ValueError, match=r"monuseg: data dir .* is empty; expected images/<name>\.tif"):
        read_records("monuseg", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_records("amibr", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="give --data-dir"):
        read_records("tupac16", None)


def test_unknown_dataset_name():
    with pytest.raises(
        ValueError, match=r"Unknown dataset 'mitos2012'; available: folder, mitos12.*Did you mean 'mitos12'"
    ):
        read_records("mitos2012", ".")


def test_images_without_labels_are_skipped_with_a_count(tmp_path, caplog):
    save(str(tmp_path / "A00_00.bmp"), tissue(10, 10))
    save(str(tmp_path / "A00_01.bmp"), tissue(10, 10))
    (tmp_path / "A00_00.csv").write_text("1,2\n")
    records = read_records("mitos12", str(tmp_path))
    assert [r.id for r in records] == ["A00_00"]
    assert "skipped 1 images without a CSV of the same name" in caplog.text


@pytest.mark.parametrize(
    "name, list_name, line",
    [
        ("mitos12", "mitoses.csv", "image,x,y\nA09_09,5,5\n"),
        ("mitos_atypia14", "points_validation.txt", "v/A09/A09_09Aa 5 5\n"),
    ],
)
def test_point_list_naming_a_missing_image(tmp_path, name, list_name, line):
    save(str(tmp_path / "images" / "A00_00.png"), tissue(10, 10))
    (tmp_path / list_name).write_text(line)
    with pytest.raises(ValueError, match=rf"{list_name}: lists images that are not in .*: A09_09"):
        read_records(name, str(tmp_path))
