import numpy as np
import pytest
import tifffile
from PIL import Image
from slide_testing import blob_canvas, write_pyramid

from mitoseg_tf.slides import detect_tissue, open_slide
from mitoseg_tf.slides import reader as reader_module


@pytest.fixture(scope="module")
def canvas():
    return blob_canvas(1200, 1000, [(300, 300)], tissue_boxes=[(100, 100, 700, 900)])


def test_pyramid_opens_with_openslide_and_aperio_mpp(tmp_path, canvas):
    path = write_pyramid(str(tmp_path / "s.svs"), canvas, mpp=0.25, downsamples=(1, 4))
    with open_slide(path) as slide:
        assert slide.backend == "openslide" and slide.mpp == pytest.approx(0.25)
        assert slide.dimensions == (1000, 1200) and slide.level_count == 2
        assert slide.level_downsamples[1] == pytest.approx(4, rel=0.01)
        np.testing.assert_array_equal(slide.read_region(200, 250, 64, 32), canvas[250:282, 200:264])
        # Outside the slide reads as white glass, not black.
        edge = slide.read_region(-10, 1190, 20, 20)
        assert edge.shape == (20, 20, 3) and (edge[:, :10] == 255).all() and (edge[10:] == 255).all()
        assert slide.level_for_downsample(5.0) == 1 and slide.level_for_downsample(3.0) == 0
        thumb = slide.thumbnail(100)
        assert max(thumb.shape[:2]) == 100 and thumb.dtype == np.uint8
    with open_slide(path, mpp=0.5) as slide:
        assert slide.mpp == 0.5


def test_tiffslide_reads_when_openslide_cannot(tmp_path, canvas, monkeypatch):
    path = write_pyramid(str(tmp_path / "s.tif"), canvas, mpp=0.25, downsamples=(1,))
    monkeypatch.setattr(reader_module, "_open_openslide", lambda path: None)
    with open_slide(path) as slide:
        assert slide.backend == "tiffslide" and slide.mpp == pytest.approx(0.25)
        np.testing.assert_array_equal(slide.read_region(0, 0, 1000, 1200), canvas)


def test_plain_image_needs_its_mpp(tmp_path, canvas):
    path = str(tmp_path / "field.png")
    Image.fromarray(canvas).save(path)
    with pytest.raises(ValueError, match=r"field\.png.*no pixel size.*--mpp"):
        open_slide(path)
    with open_slide(path, mpp=0.25) as slide:
        assert slide.backend == "image" and slide.level_count == 1
        np.testing.assert_array_equal(slide.read_region(5, 7, 30, 20), canvas[7:27, 5:35])


def test_missing_mpp_unreadable_and_non_slide_files_are_named(tmp_path, canvas):
    no_mpp = write_pyramid(str(tmp_path / "nompp.tif"), canvas, aperio=False, downsamples=(1,))
    with pytest.raises(ValueError, match=r"nompp\.tif.*no pixel size"):
        open_slide(no_mpp)
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(ValueError, match=r"broken\.svs: the file is corrupt or truncated"):
        open_slide(str(broken))
    text = tmp_path / "notes.tif"
    text.write_text("this is not an image")
    with pytest.raises(ValueError, match=r"notes\.tif: not a readable slide"):
        open_slide(str(text))
    with pytest.raises(FileNotFoundError, match="absent.svs"):
        open_slide(str(tmp_path / "absent.svs"))
    with pytest.raises(ValueError, match="mpp given"):
        open_slide(no_mpp, mpp=-1)


def test_tissue_mask_drops_glass_and_pen(tmp_path):
    image = np.full((2048, 2048, 3), 255, np.uint8)
    image[200:1200, 200:1200] = (214, 150, 190)  # tissue
    image[1400:1900, 200:700] = (40, 60, 200)  # blue pen
    image[1400:1900, 1000:1500] = (40, 150, 60)  # green pen
    image[200:700, 1500:1900] = (20, 20, 20)  # black pen
    image[1800:1802, 1800:1802] = (214, 150, 190)  # a speck of dust
    path = str(tmp_path / "pen.png")
    Image.fromarray(image).save(path)
    with open_slide(path, mpp=0.25) as slide:
        tissue = detect_tissue(slide)
    assert tissue.area_mm2 == pytest.approx((1000 * 0.25e-3) ** 2, rel=0.08)
    x0, y0, x1, y1 = tissue.bounds()
    assert abs(x0 - 200) <= 32 and abs(x1 - 1200) <= 32 and abs(y0 - 200) <= 32 and abs(y1 - 1200) <= 32
    assert not tissue.any_in(1400, 1400, 1900, 1900) and not tissue.any_in(1500, 200, 1900, 700)


def test_tissue_of_a_blank_slide_is_empty(tmp_path):
    rng = np.random.default_rng(0)
    glass = (245 + rng.integers(-6, 7, size=(1024, 1024, 3))).clip(0, 255).astype(np.uint8)
    path = str(tmp_path / "glass.tif")
    tifffile.imwrite(path, glass, photometric="rgb")
    with open_slide(path, mpp=0.25) as slide:
        tissue = detect_tissue(slide)
    assert tissue.area_mm2 == 0 and tissue.bounds() is None
