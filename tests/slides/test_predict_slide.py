import csv
import json
import os
import types

import geojson
import numpy as np
import pytest
import shapely.geometry
from PIL import Image
from slide_testing import FakeDetector, blob_canvas, write_pyramid

from mitoseg_tf.detection.hotspot import find_hotspot
from mitoseg_tf.slides import open_slide, predict_slide, predict_slides
from mitoseg_tf.slides import outputs as outputs_module

TISSUE_BOXES = [(64, 64, 1400, 1000), (1700, 1100, 2300, 1700)]
BLOBS = [(300, 300), (512, 700), (511, 512), (1024, 200), (900, 900), (1800, 1200), (2000, 1500), (2250, 1650)]


def centres(figures):
    return sorted((round(f.centroid[0], 3), round(f.centroid[1], 3)) for f in figures)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 2400 x 1800 slide at 0.25 um/px: two tissue patches on glass, dark blobs, some on tile seams (512)."""
    folder = tmp_path_factory.mktemp("synthetic")
    image = blob_canvas(1800, 2400, BLOBS, tissue_boxes=TISSUE_BOXES)
    return image, write_pyramid(str(folder / "synthetic.svs"), image, mpp=0.25, downsamples=(1, 4, 16))


def test_same_figures_as_the_image_path_and_seams_counted_once(synthetic, tmp_path):
    image, path = synthetic
    detector = FakeDetector()
    result = predict_slide(detector, path, tile=256, margin=48, progress=False)
    whole = FakeDetector().figures_native(image)
    assert result.count == len(BLOBS) == len(whole)
    for a, b in zip(centres(result.figures), centres(whole)):
        assert abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1
    # (511, 512) straddles four tiles' corner and (512, 700) a vertical seam: each once.
    assert result.positions_um().shape == (len(BLOBS), 2)
    np.testing.assert_allclose(
        sorted(result.positions_um()[:, 0]), sorted((np.array(BLOBS)[:, 0] + 0.5) * 0.25), atol=0.25
    )


def test_background_tiles_never_reach_the_network(synthetic):
    _, path = synthetic
    detector = FakeDetector()
    result = predict_slide(detector, path, tile=256, margin=32, progress=False)
    assert result.tiles["total"] == 10 * 8
    assert detector.calls == result.tiles["run"] == result.tiles["with_tissue"] < result.tiles["total"] * 0.6
    assert result.tissue_area_mm2 == pytest.approx((1336 * 936 + 600 * 600) * 0.25**2 * 1e-6, rel=0.1)


def test_counts_in_microns_survive_a_slide_stored_at_half_the_resolution(synthetic, tmp_path):
    image, _ = synthetic
    half = image.reshape(900, 2, 1200, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    path = write_pyramid(str(tmp_path / "half.svs"), half, mpp=0.5, downsamples=(1, 4))
    result = predict_slide(FakeDetector(mpp=0.25), path, tile=256, margin=48, progress=False)
    full = predict_slide(FakeDetector(mpp=0.25), synthetic[1], tile=256, margin=48, progress=False)
    assert result.count == full.count == len(BLOBS)
    a = result.positions_um()[np.lexsort(result.positions_um().T)]
    b = full.positions_um()[np.lexsort(full.positions_um().T)]
    np.testing.assert_allclose(a, b, atol=1.0)
    assert result.figures[0].area_um2 == pytest.approx(full.figures[0].area_um2, rel=0.1)


def test_resume_after_a_kill_gives_the_same_figures(synthetic, tmp_path):
    _, path = synthetic
    reference = predict_slide(FakeDetector(), path, tile=256, margin=48, progress=False)
    out = str(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        predict_slide(
            FakeDetector(fail_after=9), path, out_dir=out, tile=256, margin=48, progress=False, state_every_s=0
        )
    assert os.path.isfile(os.path.join(out, "synthetic.svs.resume.json"))
    assert not os.path.exists(os.path.join(out, "synthetic.svs.geojson"))  # nothing written for a run that died
    again = FakeDetector()
    resumed = predict_slide(again, path, out_dir=out, resume=True, tile=256, margin=48, progress=False)
    assert resumed.tiles["resumed"] == 9 and again.calls == resumed.tiles["with_tissue"] - 9
    assert resumed.figures == reference.figures
    # Another tiling would give other tiles: the state refuses it rather than mixing them.
    with pytest.raises(ValueError, match="another slide, detector or tiling"):
        predict_slide(FakeDetector(), path, out_dir=out, resume=True, tile=320, margin=48, progress=False)


def test_outputs_geojson_csv_pictures_and_summary(synthetic, tmp_path):
    _, path = synthetic
    out = str(tmp_path / "out")
    result = predict_slide(
        FakeDetector(), path, out_dir=out, tile=512, margin=48, progress=False, hotspots=2, hotspot_area_mm2=0.05
    )
    with open(result.outputs["geojson"]) as fh:
        text = fh.read()
    assert geojson.loads(text).is_valid
    features = json.loads(text)["features"]
    detections = [f for f in features if f["properties"]["objectType"] == "detection"]
    annotations = [f for f in features if f["properties"]["objectType"] == "annotation"]
    assert len(detections) == result.count and len(annotations) == 2
    assert all(d["properties"]["classification"]["name"] == "Mitosis" for d in detections)
    for feature in features:
        assert shapely.geometry.shape(feature["geometry"]).is_valid
    hot = result.hotspot
    box = shapely.geometry.shape(annotations[0]["geometry"])
    assert box.area * 0.25**2 * 1e-6 == pytest.approx(hot.area_mm2, rel=1e-6)
    assert (
        annotations[0]["properties"]["measurements"]["count"]
        == hot.count
        >= annotations[1]["properties"]["measurements"]["count"]
    )
    with open(result.outputs["figures_csv"]) as fh:
        rows = list(csv.DictReader(fh))
    # one frame for pixels and microns (Figure.xy): microns are pixels times mpp
    assert len(rows) == result.count and float(rows[0]["x_um"]) == pytest.approx(
        float(rows[0]["x_px"]) * 0.25, abs=0.01
    )
    assert [int(r["number"]) for r in rows] == list(range(1, result.count + 1))
    with open(result.outputs["summary"]) as fh:
        summary = json.loads(fh.readline())
    assert summary["count"] == result.count and summary["hotspot_count"] == hot.count
    for kind in ("thumbnail", "heatmap", "tissue"):
        assert Image.open(result.outputs[kind]).size[0] > 10
    for kind in ("thumbnail", "heatmap"):
        with Image.open(result.outputs[kind]) as picture:
            assert picture.format == "JPEG" and max(picture.size) <= outputs_module.THUMBNAIL_SIZE
    assert not [n for n in os.listdir(out) if ".partial" in n]


def test_a_circular_hotspot_is_a_circle_in_geojson():
    hot = find_hotspot(
        np.array([[300.0, 300.0]]), tissue=np.ones((80, 80), bool), tissue_mpp=8.0, shape="circle", area_mm2=0.05
    )
    (feature,) = outputs_module.hotspot_features(types.SimpleNamespace(hotspots=[hot], mpp=0.5))
    ring = np.array(feature["geometry"]["coordinates"][0]) * 0.5  # microns
    radius = np.hypot(*(ring - [(hot.x0 + hot.x1) / 2, (hot.y0 + hot.y1) / 2]).T)
    assert len(ring) == 65 and np.ptp(radius) < 1e-6
    assert radius[0] == pytest.approx(np.sqrt(0.05 / np.pi) * 1000, abs=8.0)  # within a mask cell
    assert feature["properties"]["measurements"]["tissue_area_mm2"] == pytest.approx(hot.area_mm2)


def test_nothing_half_written_when_writing_fails(synthetic, tmp_path, monkeypatch):
    _, path = synthetic

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(outputs_module, "draw_heatmap", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        predict_slide(FakeDetector(), path, out_dir=str(out), tile=512, progress=False)
    assert [n for n in os.listdir(out) if not n.endswith(".resume.json")] == []


def test_nuclei_get_density_but_no_hotspot_or_grade(synthetic):
    result = predict_slide(FakeDetector(object_class="Nucleus"), synthetic[1], tile=512, progress=False)
    counts = result.counts()
    assert counts["count"] == len(BLOBS) and counts["per_mm2"] > 0
    assert result.hotspot is None and "nottingham" not in counts and "hotspot_per_10hpf" not in counts


def test_zero_tissue_is_an_empty_result(tmp_path):
    path = write_pyramid(str(tmp_path / "glass.svs"), np.full((700, 900, 3), 250, np.uint8), downsamples=(1,))
    detector = FakeDetector()
    result = predict_slide(detector, path, out_dir=str(tmp_path / "out"), progress=False)
    assert detector.calls == 0 and result.count == 0 and result.tissue_area_mm2 == 0
    assert result.per_mm2 is None and result.hotspot is None and result.counts()["nottingham"] is None
    assert os.path.isfile(result.outputs["geojson"])


def test_folder_with_a_bad_slide_reports_it_and_finishes_the_others(synthetic, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    os.symlink(synthetic[1], folder / "a.svs")
    (folder / "b.svs").write_bytes(b"not a slide")
    write_pyramid(str(folder / "c.tif"), np.full((300, 300, 3), 250, np.uint8), aperio=False, downsamples=(1,))
    result = predict_slides(FakeDetector(), str(folder), out_dir=str(tmp_path / "out"), tile=512, progress=False)
    status = {r["slide"]: r["status"] for r in result.rows}
    assert status["a.svs"] == "ok" and "b.svs: not a readable slide" in status["b.svs"]
    assert "c.tif" in status["c.tif"] and "no pixel size" in status["c.tif"]
    with open(result.summary_path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["slide"] for r in rows] == ["a.svs", "b.svs", "c.tif"] and rows[0]["count"] == str(len(BLOBS))


def test_real_fields_mosaic_matches_the_image_path(shared_data, tmp_path):
    """Two MITOS-2012 fields side by side on glass: the slide path sees what the whole image shows."""
    folder = os.path.join(shared_data, "mitos12_dev", "images")
    crops = [
        np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"))[:512, :512] for n in ("A00_00.jpg", "A01_04.jpg")
    ]
    mosaic = np.full((512 + 256, 2 * 512 + 384, 3), 255, np.uint8)
    mosaic[128:640, 128:640], mosaic[128:640, 768:1280] = crops
    path = write_pyramid(str(tmp_path / "mosaic.tif"), mosaic, mpp=0.25, downsamples=(1, 4))
    detector = FakeDetector(min_area_um2=10.0)
    result = predict_slide(detector, path, tile=256, margin=96, progress=False)
    with open_slide(path) as slide:
        same_pixels = slide.read_region(0, 0, *slide.dimensions)
    whole = FakeDetector(min_area_um2=10.0).figures_native(same_pixels)

    def small(figures):  # a component wider than the margin can be cut differently by a window
        return [f for f in figures if max(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) < 96]

    expected, found = small(whole), small(result.figures)
    assert len(expected) > 10
    found_rc = np.array([f.centroid for f in found])
    for f in expected:
        assert np.abs(found_rc - f.centroid).max(axis=1).min() <= 1.0
    assert len(found) == len(expected)


def test_a_real_zoo_detector_runs_through_predict_slide(synthetic, tmp_path):
    from mitoseg_tf.detector import DetectionSettings, Detector
    from mitoseg_tf.zoo import build

    model = build("unet", base_filters=4, input_shape=(None, None, 3))
    detector = Detector(model, mpp=0.5, settings=DetectionSettings(pixel_threshold=0.5), tile=256)
    image = blob_canvas(640, 640, [(320, 320)], tissue_boxes=[(64, 64, 600, 600)])
    path = write_pyramid(str(tmp_path / "small.svs"), image, mpp=0.25, downsamples=(1, 2))
    result = detector.predict_slide(path, tile=192, margin=32, progress=False)
    assert result.tiles["run"] == result.tiles["with_tissue"] >= 1
    assert result.object_class == "Mitosis" and result.detector == detector.describe()
    # An untrained network's map is not tile-invariant; what must hold is where its figures land.
    width, height = result.dimensions
    assert all(0 <= f.centroid[0] < height and 0 <= f.centroid[1] < width for f in result.figures)
    assert json.loads(json.dumps(result.summary()))["object_class"] == "Mitosis"
