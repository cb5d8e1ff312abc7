import math

import numpy as np
import pytest

from mitoseg_tf.detection.counting import field_area_mm2, nottingham_mitotic_score
from mitoseg_tf.detection.hotspot import find_hotspot, find_hotspots, ten_hpf, window_area_mm2


def brute_force(points, bounds, side):
    """Best count over every integer window position (exhaustive for integer points, bounds and side)."""
    x0, y0, x1, y1 = bounds
    best = 0
    for wx in range(int(x0), int(x1 - side) + 1):
        inx = (points[:, 0] >= wx) & (points[:, 0] <= wx + side)
        for wy in range(int(y0), int(y1 - side) + 1):
            best = max(best, int((inx & (points[:, 1] >= wy) & (points[:, 1] <= wy + side)).sum()))
    return best


def side_area(side_um):
    return (side_um / 1000.0) ** 2


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_integer_points_with_ties_and_edges(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    # A coarse lattice makes many ties and points on window edges; some points sit on the bounds.
    points = rng.integers(0, 13, size=(n, 2)).astype(np.float64) * 5
    if n >= 4:
        points[:4] = [[0, 60], [60, 0], [60, 60], [0, 0]]
    bounds = (0.0, 0.0, 60.0, 60.0)
    side = float(rng.choice([5, 10, 15, 25]))
    hot = find_hotspot(points, bounds_um=bounds, area_mm2=side_area(side))
    assert hot.count == brute_force(points, bounds, side)
    # The window reported holds exactly the figures it says, and lies inside the bounds.
    inside = (points[:, 0] >= hot.x0) & (points[:, 0] <= hot.x1) & (points[:, 1] >= hot.y0) & (points[:, 1] <= hot.y1)
    assert inside.sum() == hot.count and set(np.flatnonzero(inside)) == set(hot.indices)
    assert 0 <= hot.x0 and hot.x1 <= 60 + 1e-9 and 0 <= hot.y0 and hot.y1 <= 60 + 1e-9
    assert hot.x1 - hot.x0 == pytest.approx(side)


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_on_real_valued_points(seed):
    rng = np.random.default_rng(100 + seed)
    points = rng.uniform(0, 2000, size=(150, 2))
    points[:50] = rng.normal(1400, 120, size=(50, 2)).clip(0, 2000)  # a cluster
    side = 400.0
    hot = find_hotspot(points, bounds_um=(0, 0, 2000, 2000), area_mm2=side_area(side))
    # Exhaustive over the candidate starts (each point's coordinate, clipped), in plain Python.
    starts_x = sorted({min(max(p, 0.0), 1600.0) for p in points[:, 0]} | {0.0})
    starts_y = sorted({min(max(p, 0.0), 1600.0) for p in points[:, 1]} | {0.0})
    ys = np.array(starts_y)[:, None]
    best = 0
    for x in starts_x:
        inx = (points[:, 0] >= x) & (points[:, 0] <= x + side)
        iny = (points[None, :, 1] >= ys) & (points[None, :, 1] <= ys + side)
        best = max(best, int((inx[None] & iny).sum(axis=1).max()))
    assert hot.count == best
    assert hot.count >= 20


def test_top_k_windows_do_not_overlap_and_do_not_increase():
    rng = np.random.default_rng(7)
    points = rng.integers(0, 41, size=(60, 2)).astype(np.float64)
    hots = find_hotspots(points, bounds_um=(0, 0, 40, 40), area_mm2=side_area(10), k=4)
    assert len(hots) == 4
    assert [h.count for h in hots] == sorted((h.count for h in hots), reverse=True)
    assert hots[0].count == brute_force(points, (0, 0, 40, 40), 10)
    for i, a in enumerate(hots):
        for b in hots[i + 1 :]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= 1e-9 or overlap_y <= 1e-9


def test_second_window_is_the_best_outside_the_first():
    # Two clusters: 5 points and 3 points, far apart; the second window finds the 3.
    points = np.array([[10, 10], [11, 12], [12, 11], [13, 13], [10, 14], [80, 80], [82, 81], [81, 84]], float)
    first, second = find_hotspots(points, bounds_um=(0, 0, 100, 100), area_mm2=side_area(10), k=2)
    assert (first.count, second.count) == (5, 3)


def test_density_nottingham_and_area_options():
    points = np.zeros((0, 2))
    hot = find_hotspot(points, bounds_um=(0, 0, 5000, 5000))
    assert hot.count == 0 and hot.area_mm2 == pytest.approx(2.0) and hot.nottingham == 1
    cluster = np.random.default_rng(1).uniform(100, 900, size=(30, 2))
    hot = find_hotspot(cluster, bounds_um=(0, 0, 5000, 5000), hpf10_area_mm2=2.0)
    assert hot.count == 30 and hot.per_10hpf == pytest.approx(30.0)
    assert hot.nottingham == nottingham_mitotic_score(30, 2.0, field_diameter_mm=0.5) == 3
    # One field definition: 2 mm^2 for 10 HPF is fields of 0.505 mm; a 0.5 mm field gives 10 HPF of 1.963 mm^2.
    assert ten_hpf() == pytest.approx((2.0, 0.5046), abs=1e-4)
    assert ten_hpf(field_diameter_mm=0.5) == pytest.approx((10 * field_area_mm2(0.5), 0.5))
    hot = find_hotspot(cluster, bounds_um=(0, 0, 5000, 5000), fields=10, field_diameter_mm=0.5)
    assert hot.area_mm2 == pytest.approx(10 * field_area_mm2(0.5)) and hot.per_10hpf == pytest.approx(30.0)
    assert hot.x1 - hot.x0 == pytest.approx(math.sqrt(hot.area_mm2) * 1000)
    assert window_area_mm2(fields=1, hpf10_area_mm2=2.0) == pytest.approx(0.2)


def test_bounds_smaller_than_the_window_give_the_whole_bounds_without_nottingham():
    points = np.array([[5.0, 5.0], [50.0, 20.0]])
    hot = find_hotspot(points, bounds_um=(0, 0, 100, 30), area_mm2=2.0)
    assert (hot.x0, hot.y0, hot.x1, hot.y1) == (0, 0, 100, 30)
    assert hot.count == 2 and hot.area_mm2 == pytest.approx(0.003) and hot.nottingham is None
    assert hot.per_10hpf == pytest.approx(2 * 2.0 / 0.003)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"area_mm2": -1}, "positive"),
        ({"area_mm2": 2, "fields": 10}, "not both"),
        ({"k": 0}, "k must"),
        ({"bounds_um": (10, 0, 0, 10)}, "bounds_um"),
        ({"hpf10_area_mm2": 2, "field_diameter_mm": 0.5}, "not both"),
        ({"shape": "circle"}, "tissue mask"),
        ({"shape": "hexagon"}, "shape"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        find_hotspots(np.array([[1.0, 1.0]]), **{"bounds_um": (0, 0, 10, 10), **kwargs})
    with pytest.raises(ValueError, match="positions"):
        find_hotspots(np.array([1.0, 2.0, 3.0]), bounds_um=(0, 0, 1, 1))
