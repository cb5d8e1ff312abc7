"""The one pixel-size rule (``inference.resample.check_mpp``) and the pixel size files state (``data.pixel_size``).

Files are written with tifffile and Pillow, and every expected value is computed by hand from the tag written.
"""

import math

import numpy as np
import pytest
import tifffile
from PIL import Image

from mitoseg_tf.data.pixel_size import PixelSize, image_pixel_size, image_pixel_sizes, stated_pixel_size
from mitoseg_tf.inference.resample import MAX_RESAMPLED_PIXELS, check_mpp, resampled_shape

PIXELS = np.full((16, 16, 3), 200, np.uint8)


def _tiff(path, **options):
    tifffile.imwrite(path, PIXELS, **options)
    return str(path)


@pytest.mark.parametrize(
    "options, mpp",
    [
        ({"resolution": (40000, 40000), "resolutionunit": "CENTIMETER"}, 0.25),  # 1e4 um / 40000 px
        ({"resolution": (101600, 101600), "resolutionunit": "INCH"}, 0.25),  # 25400 um / 101600 px
        ({"resolution": (20000, 20000), "resolutionunit": "CENTIMETER"}, 0.5),
        ({"resolution": (44000, 44000), "resolutionunit": "CENTIMETER"}, 10000 / 44000),
    ],
)
def test_tiff_resolution_tags_with_their_unit(tmp_path, options, mpp):
    assert stated_pixel_size(_tiff(tmp_path / "a.tif", **options)) == PixelSize(
        pytest.approx(mpp, rel=1e-8), "TIFF tags"
    )  # 9 digits kept


def test_tiff_descriptions_aperio_and_ome(tmp_path):
    aperio = _tiff(tmp_path / "a.tif", description="Aperio Image Library v12.0.15 |AppMag = 40|MPP = 0.2520|")
    assert stated_pixel_size(aperio) == PixelSize(0.252, "Aperio description")
    ome = tmp_path / "o.ome.tif"
    tifffile.imwrite(ome, PIXELS, metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    assert stated_pixel_size(ome) == PixelSize(0.5, "OME-XML")


def test_tiff_tags_that_cannot_be_used_are_refused_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"a\.tif: its TIFF resolution tags have no unit \(ResolutionUnit 1, 'none'\)"):
        stated_pixel_size(_tiff(tmp_path / "a.tif", resolution=(40000, 40000), resolutionunit="NONE"))
    with pytest.raises(ValueError, match=r"b\.tif: its TIFF tags state pixels of 0\.25 x 0\.5 um, not square"):
        stated_pixel_size(_tiff(tmp_path / "b.tif", resolution=(40000, 20000), resolutionunit="CENTIMETER"))
    # 72 dpi, what editors write: 25400 / 72 = 352.8 um/px, a print resolution
    with pytest.raises(
        ValueError, match=r"c\.tif \(TIFF tags\): 352\.77\d* is not a plausible pixel size; accepted: 0\.05 to 10"
    ):
        stated_pixel_size(_tiff(tmp_path / "c.tif", resolution=(72, 72), resolutionunit="INCH"))


def test_png_phys_in_metres_and_jpeg_jfif(tmp_path):
    Image.fromarray(PIXELS).save(tmp_path / "a.png", dpi=(101600, 101600))  # Pillow writes 4e6 px/m
    assert stated_pixel_size(tmp_path / "a.png") == PixelSize(0.25, "PNG pHYs")
    Image.fromarray(PIXELS).save(tmp_path / "b.png")
    assert stated_pixel_size(tmp_path / "b.png") is None
    Image.fromarray(PIXELS).save(tmp_path / "c.jpg", dpi=(50800, 50800))  # JFIF, per inch
    assert stated_pixel_size(tmp_path / "c.jpg") == PixelSize(0.5, "JPEG JFIF density")
    Image.fromarray(PIXELS).save(tmp_path / "d.jpg")  # JFIF 1:1 without a unit
    assert stated_pixel_size(tmp_path / "d.jpg") is None


def test_a_given_mpp_wins_and_notes_a_different_statement(tmp_path):
    path = _tiff(tmp_path / "a.tif", resolution=(20000, 20000), resolutionunit="CENTIMETER")
    assert image_pixel_size(path) == PixelSize(0.5, "TIFF tags")
    given = image_pixel_size(path, 0.25, given_by="--mpp")
    assert (given.mpp, given.origin) == (0.25, "--mpp; the file states 0.5 um/px (TIFF tags)")
    assert image_pixel_size(path, 0.502, given_by="--mpp").note == ""  # within 1 %: the same pixel size


def test_images_without_a_pixel_size_give_one_error_and_unreadable_files_are_left_to_the_reader(tmp_path):
    Image.fromarray(PIXELS).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    paths = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    with pytest.raises(
        ValueError,
        match=r"the pixel size of 1 of 2 images is unknown \(.*a\.png states no pixel size\); "
        r"give it with --mpp MICRONS_PER_PIXEL \(0\.25 at 40x, 0\.5 at 20x\)",
    ):
        image_pixel_sizes(paths, given_by="--mpp")
    assert image_pixel_sizes(paths[1:]) == {paths[1]: None}
    assert image_pixel_sizes(paths, 0.5)[paths[0]] == PixelSize(0.5, "mpp")


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, 1e6, 0.01, 11, "0.5", True, None])
def test_the_one_rule_names_the_value_its_source_and_the_range(value):
    with pytest.raises(ValueError) as err:
        check_mpp(value, "recipe r.yaml (target_mpp)")
    assert str(err.value) == (
        f"recipe r.yaml (target_mpp): {value!r} is not a plausible pixel size; accepted: 0.05 to 10 microns per pixel "
        "(0.25 at 40x, 0.5 at 20x)."
    )
    assert check_mpp(np.float32(0.25)) == 0.25 and check_mpp(10) == 10.0


def test_the_resampler_neither_allocates_without_bound_nor_shrinks_to_a_speck():
    assert resampled_shape((2000, 2000), 0.5, 0.25) == (4000, 4000)
    side = int(math.sqrt(MAX_RESAMPLED_PIXELS)) // 10 + 10
    with pytest.raises(ValueError, match=r"would be .* px at 0\.25 um/px, more than the 268 Mpx .* `mitoseg slide`"):
        resampled_shape((side, side), 2.5, 0.25)
    with pytest.raises(
        ValueError, match=r"an image of 100x100 px at 0\.05 um/px would be 2x2 px at 2\.5 um/px, under 8 px"
    ):
        resampled_shape((100, 100), 0.05, 2.5)
    assert resampled_shape((4, 6), 0.25, 0.5) == (2, 3)  # already smaller than 8 px: it may stay small


def test_mitoseg_slide_reads_a_plain_image_pixel_size_as_predict_does(tmp_path):
    from mitoseg_tf.slides.reader import open_slide

    Image.fromarray(PIXELS).save(tmp_path / "a.png", dpi=(50800, 50800))  # 2e6 px/m: 0.5 um/px
    with open_slide(str(tmp_path / "a.png")) as slide:
        assert slide.mpp == 0.5
    with open_slide(str(tmp_path / "a.png"), mpp=0.25) as slide:
        assert slide.mpp == 0.25
