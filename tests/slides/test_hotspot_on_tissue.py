"""The hotspot on tissue, checked against plain loops over every window position (not the search's own candidates)."""

from fractions import Fraction

import numpy as np
import pytest

from mitoseg_tf.detection.hotspot import MIN_TISSUE_FRACTION, find_hotspot, find_hotspots

CELL = 10.0  # microns per tissue-mask cell


def area_of(cells):
    """The area (mm^2) of a square ``cells`` cells a side."""
    return (cells * CELL / 1000.0) ** 2


def footprint(shape, cells):
    """The window's cells, written from its definition: a square, or the circle of the same area."""
    if shape == "square":
        return np.ones((cells, cells), bool)
    diameter = 2.0 * cells / np.sqrt(np.pi)
    box = int(round(diameter))
    out = np.zeros((box, box), bool)
    for r in range(box):
        for c in range(box):
            out[r, c] = (r + 0.5 - box / 2) ** 2 + (c + 0.5 - box / 2) ** 2 <= (diameter / 2) ** 2
    return out


def brute_force(points, mask, kernel, k=1, min_fraction=MIN_TISSUE_FRACTION):
    """[(count, tissue cells, row, col)] of the best windows, by exact density, then count, top-most, left-most."""
    height, width = mask.shape
    kh, kw = kernel.shape
    figure_cells = [(int(y // CELL), int(x // CELL)) for x, y in points]
    taken = np.zeros(mask.shape, bool)
    found = []
    for _ in range(k):
        best = None
        for row in range(height - kh + 1):
            for col in range(width - kw + 1):
                placed = np.zeros(mask.shape, bool)
                placed[row : row + kh, col : col + kw] = kernel
                tissue = int((placed & mask).sum())
                if (placed & taken).any() or tissue / kernel.sum() < min_fraction:
                    continue
                count = sum(int(placed[r, c]) for r, c in figure_cells)
                key = (Fraction(count, tissue), count, -row, -col)
                if best is None or key > best[0]:
                    best = (key, placed, (count, tissue, row, col))
        if best is None:
            break
        taken |= best[1]
        found.append(best[2])
    return found


def search(points, mask, shape, cells, k=1):
    hots = find_hotspots(points, tissue=mask, tissue_mpp=CELL, shape=shape, area_mm2=area_of(cells), k=k)
    return [
        (h.count, round(h.tissue_fraction * footprint(shape, cells).sum()), round(h.y0 / CELL), round(h.x0 / CELL))
        for h in hots
    ]


def points_in(cells):
    """One figure at the middle of each (row, col) cell, as (x, y) microns."""
    return np.array([[(c + 0.5) * CELL, (r + 0.5) * CELL] for r, c in cells], float).reshape(-1, 2)


@pytest.mark.parametrize("shape", ["square", "circle"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_on_random_tissue(seed, shape):
    rng = np.random.default_rng(seed)
    mask = np.zeros((18, 24), bool)
    for _ in range(3):  # tissue islands with glass between and around them
        r, c = rng.integers(0, 14), rng.integers(0, 20)
        mask[r : r + rng.integers(3, 10), c : c + rng.integers(3, 12)] = True
    points = rng.uniform(0, [24 * CELL, 18 * CELL], size=(int(rng.integers(5, 30)), 2))
    points[:6] = rng.normal([60, 60], 12, size=(6, 2)).clip(0, 170)  # a cluster, on tissue or not
    kernel = footprint(shape, 5)
    expected = brute_force(points, mask, kernel, k=2)
    assert search(points, mask, shape, 5, k=2) == expected
    for hot in find_hotspots(points, tissue=mask, tissue_mpp=CELL, shape=shape, area_mm2=area_of(5), k=2):
        assert hot.tissue_fraction >= MIN_TISSUE_FRACTION and hot.shape == shape
        assert hot.per_mm2 == pytest.approx(hot.count / hot.tissue_area_mm2)
        assert hot.per_10hpf == pytest.approx(hot.per_mm2 * 2.0)  # the one 10-HPF area, default 2 mm^2


def half_on_glass(full_window_figures):
    """Tissue on the left half; 4 figures at its edge with 6 more on the glass beside them; a cluster inside."""
    mask = np.zeros((20, 40), bool)
    mask[:, :20] = True
    edge = [(2, 17), (3, 18), (4, 19), (5, 19)] + [(2, 25), (3, 26), (4, 25), (5, 26), (6, 25), (7, 26)]
    inside = [(10 + i, 2 + i % 7) for i in range(full_window_figures)]
    return points_in(edge + inside), mask


def test_a_cluster_half_on_glass_loses_to_a_lower_count_window_on_tissue_when_densities_say_so():
    points, mask = half_on_glass(9)
    # Counting alone, the window over the edge cluster (10 figures, mostly glass) would win.
    assert find_hotspot(points, bounds_um=(0, 0, 400, 200), area_mm2=area_of(10)).count == 10
    hot = find_hotspot(points, tissue=mask, tissue_mpp=CELL, area_mm2=area_of(10))
    assert (hot.count, hot.tissue_fraction) == (9, 1.0)  # 9 per 100 cells of tissue beats 4 per 50
    assert search(points, mask, "square", 10) == brute_force(points, mask, footprint("square", 10))
    points, mask = half_on_glass(7)  # 7 per 100 cells: now the edge window, half on glass, is denser
    hot = find_hotspot(points, tissue=mask, tissue_mpp=CELL, area_mm2=area_of(10))
    assert (hot.count, hot.tissue_fraction) == (4, 0.5)
    assert hot.per_mm2 == pytest.approx(4 / (50 * (CELL / 1000) ** 2))
    assert search(points, mask, "square", 10) == brute_force(points, mask, footprint("square", 10))


def test_ties_go_to_the_higher_count_then_the_top_left_window():
    mask = np.ones((20, 40), bool)
    mask[:, 30:] = False
    # 2 figures where the best window is half on glass (2 per 50 cells) and 4 fully on tissue (4 per 100): equal.
    points = points_in([(1, 27), (2, 28), (12, 2), (13, 3), (14, 4), (15, 5)])
    hot = find_hotspot(points, tissue=mask, tissue_mpp=CELL, area_mm2=area_of(10))
    assert hot.count == 4 and hot.tissue_fraction == 1.0
    # Of the many windows holding the 4, the top-most, then left-most: rows 6..15 and columns 0..9.
    assert (hot.y0, hot.x0) == (6 * CELL, 0.0)
    assert search(points, mask, "square", 10) == brute_force(points, mask, footprint("square", 10))
    hot = find_hotspot(points[:-1], tissue=mask, tissue_mpp=CELL, area_mm2=area_of(10))
    assert (hot.count, hot.tissue_fraction) == (2, 0.5)


def test_circle_and_square_of_one_area_count_differently():
    mask = np.ones((16, 16), bool)
    points = points_in([(5, 5), (5, 10), (10, 5), (10, 10)])  # the corners of a 6-cell square
    for shape, count in (("square", 4), ("circle", 2)):
        hot = find_hotspot(points, tissue=mask, tissue_mpp=CELL, shape=shape, area_mm2=area_of(6))
        assert hot.count == count and hot.shape == shape
        assert search(points, mask, shape, 6) == brute_force(points, mask, footprint(shape, 6))
    assert hot.area_mm2 == pytest.approx(area_of(6), rel=0.1)  # the digital disk keeps the area within a few cells
    assert len(hot.outline_um()) == 64


def test_no_window_with_enough_tissue_gives_no_hotspot_and_a_small_slide_cuts_the_window():
    mask = np.zeros((30, 30), bool)
    mask[:4, :4] = True  # 16 cells of tissue; a 10 x 10 window needs 50
    assert find_hotspots(points_in([(1, 1)]), tissue=mask, tissue_mpp=CELL, area_mm2=area_of(10)) == []
    hot = find_hotspot(points_in([(1, 1)]), tissue=np.ones((4, 6), bool), tissue_mpp=CELL, area_mm2=area_of(10))
    assert (hot.x1 - hot.x0, hot.y1 - hot.y0) == (6 * CELL, 4 * CELL) and hot.nottingham is None
