"""The ``voc`` reader, its ``atypia14_train`` preset and AMi-Br read from several folders."""

import os

import numpy as np
import pytest
from format_fixtures import save, tissue
from voc_fixtures import amibr_parts, atypia14_train, voc_xml

from mitoseg_tf.data.formats import FORMATS, load_example, read_records
from mitoseg_tf.data.images import image_size
from mitoseg_tf.data.mixture import check_spec

SIZE = (60, 80)  # (height, width)


def _one_folder(root, objects, stem="frame1", size=SIZE):
    save(os.path.join(root, f"{stem}.png"), tissue(*size))
    voc_xml(os.path.join(root, f"{stem}.xml"), objects, size=size)


def test_atypia14_preset_reads_the_real_frames(shared_data):
    root = shared_data.need("atypia14_train")
    records = {r.id: r for r in read_records("voc", root, preset="atypia14_train")}
    with open(os.path.join(root, "frames_not_here.txt")) as fh:
        absent = {line.strip() for line in fh if line.strip()}
    # SOURCE_README.md: 265 of the published 393 frames, 578 of the 743 mitoses, the rest listed by stem
    assert len(records) == 265 and sum(len(r.points) for r in records.values()) == 578
    assert len(absent) == 128 and not absent & set(records)
    assert sorted({r.slide for r in records.values()}) == [
        "H03",
        "H04",
        "H05",
        "H07",
        "H10",
        "H11",
        "H12",
        "H14",
        "H15",
        "H17",
        "H18",
    ]
    # centres by hand from the XML: a whole 60-px box, x 1148-1208 y 1292-1352 -> (1322, 1178)
    np.testing.assert_allclose(records["H03_00Aa"].points, [[1322, 1178]])
    # a box clipped by the left edge, x 0-49 y 380-440: the mitosis is 30 px left of x = 49 -> (410, 19)
    assert [410, 19] in records["H17_01Ac"].points.tolist()
    # one of the 46 frames the converter wrote 1662 px wide while its XML says 1663
    assert image_size(records["H11_00Bb"].image) == (1485, 1662)
    np.testing.assert_allclose(records["H11_00Bb"].points, [[1259, 475]])


def test_voc_is_a_listed_dataset_and_reads_box_centres_classes_and_negatives(tmp_path):
    root = str(tmp_path / "one")
    _one_folder(
        root, [("mitosis", (10, 20, 30, 40)), ("Mitotic figure", (50, 5, 61, 16)), ("non-mitosis", (0, 0, 4, 6))]
    )
    assert "voc" in FORMATS
    (rec,) = read_records("voc", root, mpp=0.25)
    # centre of x 10-30, y 20-40 is (row 30, col 20); of x 50-61, y 5-16 is (row 10.5, col 55.5)
    np.testing.assert_allclose(rec.points, [[30, 20], [10.5, 55.5]])
    assert rec.points.dtype == np.float32 and rec.classes == ("mitosis", "Mitotic figure")
    np.testing.assert_allclose(rec.negatives, [[3, 2]])
    assert rec.mpp == 0.25 and rec.slide == "frame1"


def test_devkit_layout_and_box_masks(tmp_path):
    root = str(tmp_path / "devkit")
    save(os.path.join(root, "JPEGImages", "a.png"), tissue(*SIZE))
    voc_xml(os.path.join(root, "Annotations", "a.xml"), [("mitosis", (10, 20, 30, 40))], size=SIZE)
    (rec,) = read_records("voc", root, mpp=0.5, masks="box")
    example = load_example(rec)
    expected = np.zeros(SIZE, np.uint8)
    expected[20:41, 10:31] = 1  # the box with its outline, as MoNuSeg's polygons are drawn
    np.testing.assert_array_equal(example["mask"], expected)
    assert example["classes"] == ["mitosis"]
    disk = load_example(read_records("voc", root, mpp=0.5)[0], radius_um=2.0)["mask"]
    assert disk.sum() == 49  # 2 um at 0.5 um/px: the 49 pixels within 4 px of the centre (30, 20)


def test_mpp_is_required(tmp_path):
    root = str(tmp_path / "one")
    _one_folder(root, [("mitosis", (10, 20, 30, 40))])
    with pytest.raises(ValueError, match="give mpp"):
        read_records("voc", root)


def _break(root, how):
    if how == "malformed":
        with open(os.path.join(root, "frame1.xml"), "w") as fh:
            fh.write("<annotation><object>")
    elif how == "outside":
        voc_xml(os.path.join(root, "frame1.xml"), [("mitosis", (70, 20, 90, 40))], size=SIZE)
    elif how == "missing image":
        voc_xml(os.path.join(root, "frame2.xml"), [("mitosis", (10, 20, 30, 40))], size=SIZE)
    elif how == "unknown class":
        voc_xml(os.path.join(root, "frame1.xml"), [("apoptosis", (10, 20, 30, 40))], size=SIZE)
    elif how == "no xml":
        save(os.path.join(root, "frame3.png"), tissue(*SIZE))
    elif how == "other size":
        voc_xml(os.path.join(root, "frame1.xml"), [("mitosis", (10, 20, 30, 40))], size=(62, 80))


@pytest.mark.parametrize(
    "how, file, message",
    [
        ("malformed", "frame1.xml", "not valid Pascal VOC XML"),
        ("outside", "frame1.xml", "outside the 80x60"),
        ("missing image", "frame2.xml", "has no image"),
        ("unknown class", "frame1.xml", r"unknown class\(es\) \['apoptosis'\]"),
        ("no xml", "frame3.png", "has no XML"),
        ("other size", "frame1.xml", "belongs to another image"),
    ],
)
def test_bad_input_is_one_error_naming_the_file(tmp_path, how, file, message):
    root = str(tmp_path / "one")
    _one_folder(root, [("mitosis", (10, 20, 30, 40))])
    _break(root, how)
    with pytest.raises(ValueError, match=message) as err:
        read_records("voc", root, mpp=0.25)
    assert file in str(err.value)


def test_images_without_xml_may_be_declared_empty_frames(tmp_path):
    root = str(tmp_path / "one")
    _one_folder(root, [("mitosis", (10, 20, 30, 40))])
    _break(root, "no xml")
    records = read_records("voc", root, mpp=0.25, missing_annotation="empty")
    assert [(r.id, len(r.points)) for r in records] == [("frame1", 1), ("frame3", 0)]


def test_atypia14_preset_recovers_clipped_centres_slides_and_pixel_size(tmp_path):
    root = str(tmp_path / "atypia14_train")
    # mitoses near each edge: the fixture clips their 60-px boxes at the 140x120 frame
    frames = {"H03_00Aa": [(60, 70), (10, 15), (100, 130)], "H17_01Bc": [(119, 0)]}
    atypia14_train(root, frames)
    records = read_records("voc", root, preset="atypia14_train", frame_size=(120, 140))
    assert [(r.id, r.slide, r.mpp, r.scanner) for r in records] == [
        ("H03_00Aa", "H03", 0.2273, "Hamamatsu NanoZoomer 2.0-HT"),
        ("H17_01Bc", "H17", 0.2273, "Hamamatsu NanoZoomer 2.0-HT"),
    ]
    np.testing.assert_allclose(records[0].points, [[60, 70], [10, 15], [100, 130]])
    np.testing.assert_allclose(records[1].points, [[119, 0]])
    # the middle of a clipped box would have been wrong: (10, 15)'s box is x 0-45, y 0-40 -> middle (20, 22.5)
    assert not np.allclose(records[0].points[1], [20, 22.5])


def test_atypia14_preset_refuses_other_frames_and_odd_boxes(tmp_path):
    root = str(tmp_path / "atypia14_train")
    atypia14_train(root, {"H03_00Aa": [(60, 70)]})
    with pytest.raises(ValueError, match="preset's frames are 1663x1485"):
        read_records("voc", root, preset="atypia14_train")
    voc_xml(os.path.join(root, "annotations", "H03_00Aa.xml"), [("mitosis", (40, 40, 80, 80))], size=(120, 140))
    with pytest.raises(ValueError, match="H03_00Aa.xml: a box spans y 40-80"):
        read_records("voc", root, preset="atypia14_train", frame_size=(120, 140))


def test_atypia14_preset_takes_frames_one_pixel_off_but_not_two(tmp_path):
    root = str(tmp_path / "atypia14_train")
    atypia14_train(root, {"H03_00Aa": [(60, 70)]}, size=(120, 139))  # XML <size> says 139 as well
    voc_xml(os.path.join(root, "annotations", "H03_00Aa.xml"), [("mitosis", (40, 30, 100, 90))], size=(120, 140))
    [record] = read_records("voc", root, preset="atypia14_train", frame_size=(120, 140))
    np.testing.assert_allclose(record.points, [[60, 70]])
    with pytest.raises(ValueError, match="preset's frames are 142x120"):
        read_records("voc", root, preset="atypia14_train", frame_size=(120, 142))
    voc_xml(os.path.join(root, "annotations", "H03_00Aa.xml"), [("mitosis", (40, 30, 100, 90))], size=(120, 141))
    with pytest.raises(ValueError, match="<size> says 141x120"):
        read_records("voc", root, preset="atypia14_train", frame_size=(120, 140))


def test_amibr_reads_crops_from_several_folders_with_one_table(tmp_path):
    first, second = str(tmp_path / "amibr"), str(tmp_path / "amibr_rest")
    amibr_parts(first, second, [("001.tiff", 1, False), ("002.tiff", 2, True)], [("003.tiff", 3, False)])
    only_first = read_records("amibr", first)
    assert [r.id for r in only_first] == ["MIDOG21_1", "MIDOG21_2"]  # the third row's crop is elsewhere: skipped
    both = read_records("amibr", first, extra_dirs=[second])
    assert [(r.id, r.label, r.slide) for r in both] == [
        ("MIDOG21_1", "normal", "MIDOG21/001.tiff"),
        ("MIDOG21_2", "atypical", "MIDOG21/002.tiff"),
        ("MIDOG21_3", "normal", "MIDOG21/003.tiff"),
    ]
    assert both[2].image.startswith(second)
    save(os.path.join(second, "patches", "normal", "MIDOG21_1.png"), tissue(128, 128))
    with pytest.raises(ValueError, match="MIDOG21_1.png is in both"):
        read_records("amibr", first, extra_dirs=[second])


def test_a_mixture_component_may_list_folders_only_for_formats_that_read_several():
    spec = {
        "train": [{"data": "amibr", "data_dir": ["amibr", "amibr_rest"]}],
        "validation": {"data": "mitos12", "data_dir": "m"},
    }
    assert check_spec(spec)
    spec["train"][0]["data"] = "monuseg"
    with pytest.raises(ValueError, match="monuseg reads one folder; several are read by amibr"):
        check_spec(spec)
