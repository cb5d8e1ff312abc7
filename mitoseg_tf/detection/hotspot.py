"""Mitotic hotspot: the window of a given area where figures are densest on tissue (exact, pure NumPy).

Pathologists grade the mitotic count in the "hottest" region of a slide; the
MIDOG convention takes a 2 mm^2 region as the equivalent of 10 high-power
fields (see ``counting``). Two exact searches:

- **On tissue** (``tissue=`` a tissue mask, what whole slides use). Windows
  are laid on the mask's grid (each cell ``tissue_mpp`` microns; a square of
  the window's area, or a circle of it: the field a microscopist sees). A
  window is a candidate only if tissue covers at least ``min_tissue_fraction``
  of it (default ``MIN_TISSUE_FRACTION`` = 0.5: at most half of it on glass),
  and candidates are ranked by their density, figures per mm^2 of the
  *tissue* inside them (ties: the higher count, then the top-most, then the
  left-most window). A figure is in a window when its grid cell is; every
  position of the grid is scored (summed-area tables), so the best window is
  exact on the grid. ``k`` > 1: the next best windows sharing no cell with
  those before (greedy, as a pathologist picks the hottest field and then the next).
- **Without a mask**: the axis-aligned square, kept inside ``bounds``, that
  contains the most positions (a closed square: a figure on the edge counts).
  If a window holds a set P of points, so does the window whose left edge sits
  at P's leftmost x (moved back inside the bounds when that would cross the
  right bound), and likewise for y. So the optimum is attained with x0 in
  {clip(p.x)} and y0 in {clip(p.y)}; with windows already chosen, an optimal
  non-overlapping window can also be pushed against one of their edges, which
  adds those edges as candidates.

One 10-HPF area serves every number (``ten_hpf``): the window's default area,
the per-10-HPF density and the Nottingham score, whose cut-offs are those of
the field diameter that makes ten fields that area (2 mm^2: 0.505 mm, the
table's 0.50 mm row).
"""

import dataclasses
import math

import numpy as np

from mitoseg_tf.defaults import DEFAULT_HOTSPOT_MIN_TISSUE
from mitoseg_tf.detection.counting import (
    DEFAULT_HPF10_AREA_MM2,
    NOTTINGHAM_MITOSIS_TABLE,
    field_area_mm2,
    nottingham_mitotic_score,
)

MIN_TISSUE_FRACTION = DEFAULT_HOTSPOT_MIN_TISSUE
SHAPES = ("square", "circle")


@dataclasses.dataclass(frozen=True)
class Hotspot:
    """One window, in microns (x right, y down, same origin as the positions); a circle lies in its box."""

    x0: float
    y0: float
    x1: float
    y1: float
    count: int
    area_mm2: float  # the window's own area
    tissue_area_mm2: float  # tissue inside it (the window's area when no mask was given)
    tissue_fraction: float  # None when no mask was given
    per_mm2: float  # figures per mm^2 of tissue inside
    per_10hpf: float  # per_mm2 times the 10-HPF area
    nottingham: int  # None where the window's area is not a valid basis (see find_hotspots)
    indices: tuple  # indices of the positions inside, in input order
    shape: str = "square"

    @property
    def bounds_um(self):
        return self.x0, self.y0, self.x1, self.y1

    def outline_um(self, points=64):
        """The window's outline as (x, y) vertices: the square's corners, or ``points`` on the circle."""
        if self.shape == "square":
            return [(self.x0, self.y0), (self.x1, self.y0), (self.x1, self.y1), (self.x0, self.y1)]
        cx, cy, rx, ry = (
            (self.x0 + self.x1) / 2,
            (self.y0 + self.y1) / 2,
            (self.x1 - self.x0) / 2,
            (self.y1 - self.y0) / 2,
        )
        angles = np.linspace(0.0, 2 * math.pi, points, endpoint=False)
        return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["indices"] = list(self.indices)
        return out


def ten_hpf(hpf10_area_mm2=None, field_diameter_mm=None):
    """(area of 10 HPF in mm^2, field diameter in mm), one from the other: give one of them, or neither.

    Default ``DEFAULT_HPF10_AREA_MM2`` (MIDOG's 2 mm^2), whose fields are
    0.505 mm across. Giving both is refused: two definitions of a field are
    what made a per-10-HPF count and a Nottingham score disagree.
    """
    if hpf10_area_mm2 is not None and field_diameter_mm is not None:
        raise ValueError(
            "give the high-power field as the area of 10 fields (hpf10_area_mm2) or as a field diameter "
            "(field_diameter_mm), not both: the other follows from it."
        )
    if field_diameter_mm is not None:
        if not (
            isinstance(field_diameter_mm, (int, float)) and math.isfinite(field_diameter_mm) and field_diameter_mm > 0
        ):
            raise ValueError(
                f"field_diameter_mm must be a positive number of mm (e.g. 0.5); got {field_diameter_mm!r}."
            )
        return 10.0 * field_area_mm2(field_diameter_mm), float(field_diameter_mm)
    area = DEFAULT_HPF10_AREA_MM2 if hpf10_area_mm2 is None else hpf10_area_mm2
    if not (isinstance(area, (int, float)) and math.isfinite(area) and area > 0):
        raise ValueError(f"hpf10_area_mm2 must be a positive area in mm^2 (MIDOG: 2); got {area!r}.")
    return float(area), 2.0 * math.sqrt(area / 10.0 / math.pi)


def window_area_mm2(area_mm2=None, *, fields=None, hpf10_area_mm2=DEFAULT_HPF10_AREA_MM2):
    """The window's area: ``area_mm2``, or ``fields`` high-power fields (a tenth of ``hpf10_area_mm2`` each), not both.

    Default: the 10-HPF area itself.
    """
    if area_mm2 is not None and fields is not None:
        raise ValueError("give the hotspot window as an area (area_mm2) or as a number of fields (fields), not both.")
    if fields is not None:
        if not (isinstance(fields, (int, float)) and math.isfinite(fields) and fields > 0):
            raise ValueError(f"fields must be a positive number of microscope fields; got {fields!r}.")
        return float(fields) * hpf10_area_mm2 / 10.0
    area = hpf10_area_mm2 if area_mm2 is None else area_mm2
    if not (isinstance(area, (int, float)) and math.isfinite(area) and area > 0):
        raise ValueError(f"the hotspot area must be a positive number of mm^2 (MIDOG's 10 HPF: 2); got {area!r}.")
    return float(area)


def _nottingham(per_10hpf, field_diameter_mm):
    """Score of a count per 10 fields; None for a field diameter the cut-off table does not cover."""
    if round(field_diameter_mm, 2) not in NOTTINGHAM_MITOSIS_TABLE:
        return None
    return nottingham_mitotic_score(per_10hpf, field_diameter_mm=field_diameter_mm)


# --- without a mask: exact count search over point coordinates ----------------------------------------


def _check_points(points_um):
    points = np.asarray(points_um, dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2 or not np.all(np.isfinite(points)):
        raise ValueError(f"positions must be a finite (N, 2) array of (x, y) microns; got shape {points.shape}.")
    return points


def _check_bounds(bounds_um, points):
    if bounds_um is None:
        if not len(points):
            raise ValueError("bounds_um is needed when there are no positions (the window needs somewhere to lie).")
        return (*points.min(axis=0), *points.max(axis=0))
    bounds = tuple(float(v) for v in bounds_um)
    if len(bounds) != 4 or not all(map(math.isfinite, bounds)) or bounds[2] < bounds[0] or bounds[3] < bounds[1]:
        raise ValueError(f"bounds_um must be (x0, y0, x1, y1) microns with x1 >= x0 and y1 >= y0; got {bounds_um!r}.")
    return bounds


def _axis_candidates(values, low, high, side, chosen_edges):
    """Window starts on one axis: point coordinates and chosen windows' edges, clipped to [low, high - side]."""
    top = max(low, high - side)
    # ``low`` as well: with no points (or none left) the window still has a place, holding 0.
    extra = [low] + [e for a, b in chosen_edges for e in (b, a - side)]
    return np.unique(np.clip(np.concatenate([values, np.asarray(extra, np.float64)]), low, top))


def _best_window(xs, ys, bounds, side_x, side_y, chosen):
    """(count, x0, y0) of the best window not overlapping ``chosen``; ties: smallest x0, then smallest y0."""
    bx0, by0, bx1, by1 = bounds
    order = np.argsort(xs, kind="stable")
    sx, sy = xs[order], ys[order]
    x_starts = _axis_candidates(xs, bx0, bx1, side_x, [(c[0], c[2]) for c in chosen])
    best = (-1, None, None)
    for x0 in x_starts:
        x1 = x0 + side_x
        blocking = [c for c in chosen if x0 < c[2] and x1 > c[0]]
        lo, hi = np.searchsorted(sx, x0, "left"), np.searchsorted(sx, x1, "right")
        strip = np.sort(sy[lo:hi])
        y_starts = _axis_candidates(strip, by0, by1, side_y, [(c[1], c[3]) for c in blocking])
        valid = np.ones(len(y_starts), bool)
        for c in blocking:
            valid &= (y_starts + side_y <= c[1]) | (y_starts >= c[3])
        if not valid.any():
            continue
        y_starts = y_starts[valid]
        counts = np.searchsorted(strip, y_starts + side_y, "right") - np.searchsorted(strip, y_starts, "left")
        i = int(np.argmax(counts))
        if counts[i] > best[0]:
            best = (int(counts[i]), float(x0), float(y_starts[i]))
    return best


def _centred(x0, inside, low, high, side, axis_values):
    """Start of the window moved to centre its own points, within the bounds, keeping every one of them."""
    if not inside.any():
        return x0
    values = axis_values[inside]
    lo = max(values.max() - side, low)
    hi = min(values.min(), max(low, high - side))
    return 0.5 * (lo + hi) if lo <= hi else x0


def _inside(xs, ys, x0, y0, side_x, side_y):
    return (xs >= x0) & (xs <= x0 + side_x) & (ys >= y0) & (ys <= y0 + side_y)


# --- on tissue: every position of the mask's grid -----------------------------------------------------------


def window_footprint(shape, area_mm2, cell_um):
    """Boolean (rows, cols) cells of a window of ``area_mm2`` on a grid of ``cell_um`` cells.

    Square: ``round(side / cell)`` cells a side. Circle of diameter d cells
    (``d = 2 sqrt(area / pi) / cell``): the cells of a ``round(d)``-wide box
    whose centres lie within d / 2 of the box's centre.
    """
    if shape not in SHAPES:
        raise ValueError(f"the hotspot window's shape must be one of {', '.join(SHAPES)}; got {shape!r}.")
    if shape == "square":
        n = max(1, int(round(math.sqrt(area_mm2) * 1000.0 / cell_um)))
        return np.ones((n, n), bool)
    diameter = 2.0 * math.sqrt(area_mm2 / math.pi) * 1000.0 / cell_um
    m = max(1, int(round(diameter)))
    offsets = np.arange(m) + 0.5 - m / 2.0
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= (diameter / 2.0) ** 2
    disk[(m - 1) // 2 : m // 2 + 1, (m - 1) // 2 : m // 2 + 1] = True  # never empty, however small
    return disk


def _rectangles(kernel):
    """The footprint as (r0, r1, c0, c1) boxes: runs of rows with the same span (a square is one, a disk a few dozen)."""
    boxes = []
    for r, row in enumerate(kernel):
        cols = np.flatnonzero(row)
        if not len(cols):
            continue
        span = (int(cols[0]), int(cols[-1]) + 1)
        if boxes and boxes[-1][1] == r and boxes[-1][2:] == span:
            boxes[-1] = (boxes[-1][0], r + 1, *span)
        else:
            boxes.append((r, r + 1, *span))
    return boxes


def _window_sums(grid, boxes, positions):
    """Sum of ``grid`` under the footprint at every top-left cell of ``positions`` (rows, cols)."""
    dtype = np.int32 if int(grid.sum()) < 2**31 else np.int64  # half the memory traffic on any real slide
    sat = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype)
    sat[1:, 1:] = np.cumsum(np.cumsum(grid, axis=0, dtype=dtype), axis=1)
    ny, nx = positions
    total = np.zeros(positions, dtype)
    for r0, r1, c0, c1 in boxes:
        total += sat[r1 : r1 + ny, c1 : c1 + nx] - sat[r0 : r0 + ny, c1 : c1 + nx]
        total -= sat[r1 : r1 + ny, c0 : c0 + nx] - sat[r0 : r0 + ny, c0 : c0 + nx]
    return total


def _tissue_hotspots(points, mask, cell_um, *, shape, area, hpf10, diameter, min_fraction, k):
    height, width = mask.shape
    whole = window_footprint(shape, area, cell_um)
    # A window larger than the slide is cut to it, centred (a smaller area, reported as such; no Nottingham score).
    r0, c0 = max(0, (whole.shape[0] - height) // 2), max(0, (whole.shape[1] - width) // 2)
    kernel = whole[r0 : r0 + height, c0 : c0 + width]
    full = kernel.shape == whole.shape
    boxes, cells = _rectangles(kernel), int(kernel.sum())
    kh, kw = kernel.shape
    positions = (height - kh + 1, width - kw + 1)
    rows, cols = np.floor(points[:, 1] / cell_um).astype(np.int64), np.floor(points[:, 0] / cell_um).astype(np.int64)
    on_grid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    figures = np.zeros(mask.shape, np.int64)
    np.add.at(figures, (rows[on_grid], cols[on_grid]), 1)
    counts = _window_sums(figures, boxes, positions)
    tissue = _window_sums(mask, boxes, positions)
    candidate = tissue >= min_fraction * cells
    density = np.where(candidate, counts / np.maximum(tissue, 1), -1.0)
    taken = np.zeros(mask.shape, bool)
    cell_mm2 = (cell_um * 1e-3) ** 2
    hotspots = []
    for _ in range(k):
        free = candidate if not taken.any() else candidate & (_window_sums(taken, boxes, positions) == 0)
        if not free.any():
            break
        best = np.where(free, density, -1.0)
        tied = free & (best == best.max())
        y, x = divmod(int(np.flatnonzero(tied & (counts == counts[tied].max()))[0]), positions[1])
        placed = np.zeros(mask.shape, bool)
        placed[y : y + kh, x : x + kw] = kernel
        taken |= placed
        inside = np.zeros(len(points), bool)
        inside[on_grid] = placed[rows[on_grid], cols[on_grid]]
        count, tissue_mm2 = int(counts[y, x]), int(tissue[y, x]) * cell_mm2
        per_mm2 = count / tissue_mm2
        hotspots.append(
            Hotspot(
                x0=x * cell_um,
                y0=y * cell_um,
                x1=(x + kw) * cell_um,
                y1=(y + kh) * cell_um,
                count=count,
                area_mm2=cells * cell_mm2,
                tissue_area_mm2=tissue_mm2,
                tissue_fraction=int(tissue[y, x]) / cells,
                per_mm2=per_mm2,
                per_10hpf=per_mm2 * hpf10,
                nottingham=_nottingham(per_mm2 * hpf10, diameter) if full else None,
                indices=tuple(int(i) for i in np.flatnonzero(inside)),
                shape=shape,
            )
        )
    return hotspots


def find_hotspots(
    points_um,
    *,
    tissue=None,
    tissue_mpp=None,
    min_tissue_fraction=MIN_TISSUE_FRACTION,
    shape="square",
    bounds_um=None,
    area_mm2=None,
    fields=None,
    hpf10_area_mm2=None,
    field_diameter_mm=None,
    k=1,
):
    """The ``k`` best non-overlapping windows, best first (fewer when no more fit).

    Args:
        points_um: (N, 2) figure positions (x, y) in microns.
        tissue: boolean tissue mask; cell (r, c) covers microns
            [c * tissue_mpp, (c + 1) * tissue_mpp) across and likewise down.
            Given: windows lie on the grid, hold at least ``min_tissue_fraction``
            tissue and are ranked by figures per tissue area (module docstring).
            None: the exact count search inside ``bounds_um`` (square only).
        shape: "square" or "circle" (a circle needs ``tissue``).
        bounds_um: without ``tissue``, (x0, y0, x1, y1) the windows must stay
            inside; default: the points' own box.
        area_mm2: window area (default: the 10-HPF area); or ``fields``
            high-power fields (a tenth of the 10-HPF area each).
        hpf10_area_mm2 / field_diameter_mm: the high-power field, one or the
            other (``ten_hpf``; default MIDOG's 2 mm^2 for 10 fields).
        k: number of windows.

    Where the slide (or the bounds) is narrower than the window along an axis,
    the window is cut to it (a smaller area, reported as such; densities are
    per its true tissue area) and the Nottingham score, defined on 10 full
    fields, is None; so it is where the field diameter lies outside the
    cut-off table (0.40-0.69 mm, i.e. 10 HPF of 1.26-3.74 mm^2). With a mask
    but no window holding enough tissue (fragments smaller than half a
    window), there is no hotspot: the list is empty.
    """
    points = _check_points(points_um)
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be a positive whole number of windows; got {k!r}.")
    hpf10, diameter = ten_hpf(hpf10_area_mm2, field_diameter_mm)
    area = window_area_mm2(area_mm2, fields=fields, hpf10_area_mm2=hpf10)
    if shape not in SHAPES:
        raise ValueError(f"the hotspot window's shape must be one of {', '.join(SHAPES)}; got {shape!r}.")
    if tissue is not None:
        if bounds_um is not None:
            raise ValueError("give tissue or bounds_um, not both: with a tissue mask the windows lie on its grid.")
        if not (isinstance(tissue_mpp, (int, float)) and tissue_mpp > 0):
            raise ValueError(
                f"tissue_mpp must be the positive microns per cell of the tissue mask; got {tissue_mpp!r}."
            )
        if not 0 < min_tissue_fraction <= 1:
            raise ValueError(f"min_tissue_fraction must lie in (0, 1]; got {min_tissue_fraction!r}.")
        mask = np.asarray(tissue, bool)
        if mask.ndim != 2 or not mask.size:
            raise ValueError(f"tissue must be a non-empty 2-D boolean mask; got shape {mask.shape}.")
        return _tissue_hotspots(
            points,
            mask,
            float(tissue_mpp),
            shape=shape,
            area=area,
            hpf10=hpf10,
            diameter=diameter,
            min_fraction=min_tissue_fraction,
            k=k,
        )
    if shape != "square":
        raise ValueError("a circular window needs the tissue mask's grid (tissue=..., tissue_mpp=...).")
    return _count_hotspots(points, bounds_um, area=area, hpf10=hpf10, diameter=diameter, k=k)


def _count_hotspots(points, bounds_um, *, area, hpf10, diameter, k):
    bounds = _check_bounds(bounds_um, points)
    side = math.sqrt(area) * 1000.0
    side_x, side_y = min(side, bounds[2] - bounds[0]), min(side, bounds[3] - bounds[1])
    if side_x <= 0 or side_y <= 0:
        return []
    full = side_x == side and side_y == side
    xs, ys = points[:, 0], points[:, 1]
    chosen, hotspots = [], []
    for _ in range(k):
        count, x0, y0 = _best_window(xs, ys, bounds, side_x, side_y, chosen)
        if x0 is None:
            break
        inside = _inside(xs, ys, x0, y0, side_x, side_y)
        # Centre the window on its figures where that keeps them all and overlaps nothing chosen: what a reader expects.
        cx = _centred(x0, inside, bounds[0], bounds[2], side_x, xs)
        cy = _centred(y0, inside, bounds[1], bounds[3], side_y, ys)
        clear = all(cx >= c[2] or cx + side_x <= c[0] or cy >= c[3] or cy + side_y <= c[1] for c in chosen)
        moved = _inside(xs, ys, cx, cy, side_x, side_y)
        if clear and moved.sum() == count:
            x0, y0, inside = cx, cy, moved
        window_mm2 = side_x * side_y * 1e-6
        per_mm2 = count / window_mm2
        hotspots.append(
            Hotspot(
                x0=x0,
                y0=y0,
                x1=x0 + side_x,
                y1=y0 + side_y,
                count=count,
                area_mm2=window_mm2,
                tissue_area_mm2=window_mm2,
                tissue_fraction=None,
                per_mm2=per_mm2,
                per_10hpf=per_mm2 * hpf10,
                nottingham=_nottingham(per_mm2 * hpf10, diameter) if full else None,
                indices=tuple(int(i) for i in np.flatnonzero(inside)),
            )
        )
        chosen.append((x0, y0, x0 + side_x, y0 + side_y))
    return hotspots


def find_hotspot(points_um, **options):
    """The best window of ``find_hotspots`` (None when there is none)."""
    found = find_hotspots(points_um, k=1, **options)
    return found[0] if found else None
