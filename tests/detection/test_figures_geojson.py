"""Figures from probability maps, and the GeoJSON QuPath imports."""

import json

import numpy as np
import pytest

from mitoseg_tf.detection import (
    extract_figures,
    figures_to_geojson,
    mask_centroids,
    validate_feature_collection,
    write_geojson,
)


def probability_map():
    p = np.zeros((60, 80), np.float32)
    p[10:20, 10:20] = 0.9  # 100 px
    p[12, 12] = 1.0
    p[40:44, 50:53] = 0.7  # 12 px
    p[5, 70] = 0.95  # 1 px speck
    return p


def test_components_areas_scores_and_min_area():
    figures = extract_figures(probability_map(), mpp=0.5, min_area_um2=2.0)  # 2 um^2 = 8 px at 0.5 um/px
    assert len(figures) == 2  # the speck (0.25 um^2) is dropped
    big, small = figures
    assert big.area_px == 100 and big.area_um2 == pytest.approx(25.0)
    assert big.centroid == pytest.approx((14.5, 14.5))
    assert big.score == pytest.approx((99 * 0.9 + 1.0) / 100)
    assert small.centroid == pytest.approx((41.5, 51.0)) and small.score == pytest.approx(0.7)
    by_max = extract_figures(probability_map(), mpp=0.5, min_area_um2=2.0, score="max")
    assert by_max[0].score == pytest.approx(1.0)
    assert len(extract_figures(probability_map(), mpp=0.5, min_area_um2=0.0)) == 3


def test_polygon_traces_the_component_and_is_closed():
    (figure,) = extract_figures(probability_map()[:30, :30], mpp=0.5)
    ring = np.array(figure.polygon)
    assert np.array_equal(ring[0], ring[-1])
    # pixels 10..19 span [10, 20) in the pixel-corner frame
    assert ring[:, 0].min() == pytest.approx(10) and ring[:, 0].max() == pytest.approx(20)
    assert ring[:, 1].min() == pytest.approx(10) and ring[:, 1].max() == pytest.approx(20)


def test_polygon_of_a_figure_touching_the_border_stays_inside_the_image():
    p = np.zeros((12, 12), np.float32)
    p[0:5, 7:12] = 1.0  # touches the top and right edges
    (figure,) = extract_figures(p, mpp=1.0, min_area_um2=0)
    validate_feature_collection(figures_to_geojson([figure]), image_shape=(12, 12))
    ring = np.array(figure.polygon)
    assert ring[:, 1].min() == pytest.approx(0) and ring[:, 0].max() == pytest.approx(12)


def test_mask_centroids():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:4, 2:4] = 1
    mask[10:13, 15:18] = 1
    np.testing.assert_allclose(mask_centroids(mask), [[2.5, 2.5], [11.0, 16.0]])
    assert mask_centroids(np.zeros((5, 5))).shape == (0, 2)


def test_geojson_structure(tmp_path):
    figures = extract_figures(probability_map(), mpp=0.5, min_area_um2=2.0)
    path = tmp_path / "figures.geojson"
    write_geojson(figures, path)
    collection = json.loads(path.read_text())
    assert validate_feature_collection(collection, image_shape=(60, 80))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 2
    feature = collection["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) >= 4
    xs, ys = zip(*ring)
    assert min(xs) == pytest.approx(10) and max(ys) == pytest.approx(20)  # pixels, x = column
    props = feature["properties"]
    assert props["classification"]["name"] == "Mitosis" and props["objectType"] == "detection"
    assert props["measurements"]["score"] == pytest.approx(figures[0].score)
    assert figures_to_geojson([]) == {"type": "FeatureCollection", "features": []}


def test_geojson_validation_rejects_broken_structures():
    good = figures_to_geojson(extract_figures(probability_map(), mpp=0.5))
    open_ring = json.loads(json.dumps(good))
    open_ring["features"][0]["geometry"]["coordinates"][0].pop()
    with pytest.raises(ValueError, match="not closed"):
        validate_feature_collection(open_ring)
    with pytest.raises(ValueError, match="outside"):
        validate_feature_collection(good, image_shape=(15, 15))
    with pytest.raises(ValueError, match="FeatureCollection"):
        validate_feature_collection({"type": "Feature"})
    point = json.loads(json.dumps(good))
    point["features"][0]["geometry"] = {"type": "Point", "coordinates": [1, 2]}
    with pytest.raises(ValueError, match="Polygon"):
        validate_feature_collection(point)
