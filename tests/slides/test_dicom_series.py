"""A DICOM series folder is one slide: listed, opened and reported once, not once per file."""

import pytest
from slide_testing import FakeDetector, blob_canvas, write_pyramid

from mitoseg_tf.slides import list_slides, open_slide, predict_slides


@pytest.fixture
def archive(tmp_path):
    """A folder: one tiled TIFF, and a series subfolder of three .dcm files (not real DICOM: no writer installed)."""
    image = blob_canvas(300, 300, [(150, 150)], tissue_boxes=[(20, 20, 280, 280)])
    write_pyramid(str(tmp_path / "b.svs"), image, downsamples=(1,))
    series = tmp_path / "case 7"
    series.mkdir()
    for name in ("level0.dcm", "level1.DCM", "label.dcm"):
        (series / name).write_bytes(b"\0" * 128 + b"DICM")
    (tmp_path / "notes.txt").write_text("not a slide")
    return tmp_path, series


def test_a_series_folder_is_listed_and_reported_as_one_slide(archive, tmp_path_factory):
    root, series = archive
    assert list_slides(str(root)) == [str(root / "b.svs"), str(series)]
    assert list_slides(str(series)) == [str(series)]
    with pytest.raises(ValueError, match="case 7: a folder of 3 DICOM file"):
        open_slide(str(series))
    result = predict_slides(
        FakeDetector(), str(root), out_dir=str(tmp_path_factory.mktemp("out")), tile=256, progress=False
    )
    assert [(r["slide"], r["status"][:6]) for r in result.rows] == [("b.svs", "ok"), ("case 7", "failed")]
