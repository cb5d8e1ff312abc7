"""Readers, recipes and records hold pixel sizes to the one rule; a pixel size the data does not state is an option."""

import math
import os

import pytest
from format_fixtures import atypia14_frames, folder_layout, midog_small, mitos12_pixels, save, tissue, tupac16_frames

from mitoseg_tf.data.formats import Record, read_records
from mitoseg_tf.training.run import load_recipe

FIXTURES = {
    "folder": folder_layout,
    "mitos12": mitos12_pixels,
    "mitos_atypia14": atypia14_frames,
    "tupac16": tupac16_frames,
    "midog": midog_small,
}
RANGE = "is not a plausible pixel size; accepted: 0.05 to 10 microns per pixel"


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_reader_takes_the_pixel_size_as_an_option_and_checks_it(tmp_path, name):
    FIXTURES[name](str(tmp_path))
    assert {r.mpp for r in read_records(name, str(tmp_path), mpp=0.5)} == {0.5}
    for value in (0, 1e6, math.nan):
        with pytest.raises(ValueError, match=f"{name}: the reader option mpp: {value!r} {RANGE}"):
            read_records(name, str(tmp_path), mpp=value)


def test_a_field_of_no_known_scanner_needs_the_option_instead_of_a_guess(tmp_path):
    mitos12_pixels(str(tmp_path))
    for suffix in (".bmp", ".csv"):
        os.rename(tmp_path / f"A01_02{suffix}", tmp_path / f"X01_02{suffix}")
    with pytest.raises(
        ValueError,
        match=r"mitos12: image 'X01_02' names no known scanner \(A = .* \(0\.2456 um/px\).*\), so "
        r"its pixel size is unknown; give it with the reader option mpp",
    ):
        read_records("mitos12", str(tmp_path))
    assert {r.id: r.mpp for r in read_records("mitos12", str(tmp_path), mpp=0.25)} == {"A00_00": 0.25, "X01_02": 0.25}


def test_midog_assumes_0_25_unless_told(tmp_path):
    midog_small(str(tmp_path))
    assert {r.mpp for r in read_records("midog", str(tmp_path))} == {0.25}
    assert {r.mpp for r in read_records("midog", str(tmp_path), mpp=0.2273)} == {0.2273}


def test_monuseg_microns_per_pixel_from_the_xml_is_checked_naming_the_file(tmp_path):
    save(str(tmp_path / "images" / "TCGA-AA-0000-01Z.tif"), tissue(40, 40))
    xml = tmp_path / "TCGA-AA-0000-01Z.xml"
    region = '<Regions><Region><Vertices><Vertex X="5" Y="5"/><Vertex X="15" Y="5"/><Vertex X="10" Y="15"/></Vertices></Region></Regions>'
    xml.write_text(f'<Annotations MicronsPerPixel="0.252"><Annotation>{region}</Annotation></Annotations>')
    assert [r.mpp for r in read_records("monuseg", str(tmp_path))] == [0.252]
    for stated in ("0", "-0.25", "abc"):
        xml.write_text(f'<Annotations MicronsPerPixel="{stated}"><Annotation>{region}</Annotation></Annotations>')
        shown = repr(stated if stated == "abc" else float(stated))
        with pytest.raises(ValueError, match=rf"TCGA-AA-0000-01Z\.xml \(MicronsPerPixel\): {shown} {RANGE}"):
            read_records("monuseg", str(tmp_path))


def test_a_record_refuses_an_implausible_pixel_size_naming_its_image():
    with pytest.raises(ValueError, match=rf"a/b\.png \(its pixel size\): inf {RANGE}"):
        Record(id="b", image="a/b.png", slide="a", mpp=math.inf)


@pytest.mark.parametrize(
    "body, where",
    [
        ("target_mpp: 0\n", "target_mpp: 0"),
        ("data: folder\ndata_options: {mpp: 1.0e+6}\n", "data_options.mpp: 1000000.0"),
        (
            "data: mixture\ndata_options:\n  train:\n    - {data: amibr, data_dir: a, options: {mpp: -1}}\n",
            r"data_options.train\[0\].options.mpp: -1",
        ),
        (
            "data: mixture\ndata_options:\n  validation: {data: voc, data_dir: a, options: {mpp: .nan}}\n",
            "data_options.validation.options.mpp: nan",
        ),
    ],
)
def test_a_recipe_pixel_size_is_checked_before_any_training_naming_the_recipe(tmp_path, body, where):
    (tmp_path / "r.yaml").write_text(body)
    with pytest.raises(ValueError, match=rf"recipe .*r\.yaml, {where} {RANGE}"):
        load_recipe(str(tmp_path / "r.yaml"))


def test_a_compare_mpp_is_checked_not_replaced_by_a_default(tmp_path):
    from mitoseg_tf.compare import CompareConfig, run_compare

    with pytest.raises(ValueError, match=f"the compare option mpp \\(--mpp\\): 0 {RANGE}"):
        run_compare(CompareConfig(output_dir=str(tmp_path), models=("unet",), mpp=0))
