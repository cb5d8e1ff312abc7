"""Mitotic hotspot: the square window of a given area holding the most figures (exact count, pure NumPy).

Pathologists grade the mitotic count in the "hottest" region of a slide; the
MIDOG convention takes a 2 mm^2 region as the equivalent of 10 high-power
fields (see ``counting``). Given figure positions in microns, ``find_hotspots``
returns the axis-aligned square of that area, kept inside ``bounds``, that
contains the most positions (a closed square: a figure on the edge counts),
then, if asked, the next best squares that do not overlap the ones before
(greedy, as a pathologist picks the hottest field and then the next).

Why the search is exact with finitely many candidates: if a window holds a
set P of points, so does the window whose left edge sits at P's leftmost x
(moved back inside the bounds when that would cross the right bound), and
likewise for y. So the optimum is attained with x0 in {clip(p.x)} and y0 in
{clip(p.y)}; with windows already chosen, an optimal non-overlapping window
can also be pushed against one of their edges, which adds those edges as
candidates. No smoothing or grid: the count is the number of figures inside.
"""

import dataclasses
import math

import numpy as np

from mitoseg_tf.detection.counting import (
    DEFAULT_FIELD_DIAMETER_MM,
    DEFAULT_HPF10_AREA_MM2,
    field_area_mm2,
    nottingham_mitotic_score,
)


@dataclasses.dataclass(frozen=True)
class Hotspot:
    """One window, in microns (x right, y down, same origin as the positions)."""

    x0: float
    y0: float
    x1: float
    y1: float
    count: int
    area_mm2: float
    per_10hpf: float
    nottingham: int  # None where the window's area is not a valid basis (see find_hotspots)
    indices: tuple  # indices of the positions inside, in input order

    @property
    def bounds_um(self):
        return self.x0, self.y0, self.x1, self.y1

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["indices"] = list(self.indices)
        return out


def window_area_mm2(area_mm2=None, *, fields=None, field_diameter_mm=DEFAULT_FIELD_DIAMETER_MM):
    """The window's area: ``area_mm2``, or ``fields`` circular fields of ``field_diameter_mm`` (not both)."""
    if area_mm2 is not None and fields is not None:
        raise ValueError("give the hotspot window as an area (area_mm2) or as a number of fields (fields), not both.")
    if fields is not None:
        if not fields > 0:
            raise ValueError(f"fields must be a positive number of microscope fields; got {fields!r}.")
        if not field_diameter_mm > 0:
            raise ValueError(f"field_diameter_mm must be positive; got {field_diameter_mm!r}.")
        return float(fields) * field_area_mm2(field_diameter_mm)
    area = DEFAULT_HPF10_AREA_MM2 if area_mm2 is None else area_mm2
    if not (isinstance(area, (int, float)) and math.isfinite(area) and area > 0):
        raise ValueError(f"the hotspot area must be a positive number of mm^2 (MIDOG's 10 HPF: 2); got {area!r}.")
    return float(area)


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


def find_hotspots(
    points_um,
    *,
    bounds_um=None,
    area_mm2=None,
    fields=None,
    field_diameter_mm=DEFAULT_FIELD_DIAMETER_MM,
    hpf10_area_mm2=DEFAULT_HPF10_AREA_MM2,
    k=1,
):
    """The ``k`` best non-overlapping square windows, best first (fewer when no more fit).

    Args:
        points_um: (N, 2) figure positions (x, y) in microns.
        bounds_um: (x0, y0, x1, y1) the windows must stay inside (the slide or
            its tissue's box); default: the points' own box.
        area_mm2: window area (default 2 mm^2, MIDOG's 10 HPF); or ``fields``
            circular fields of ``field_diameter_mm`` (e.g. 10 fields of 0.5 mm).
        hpf10_area_mm2: area of 10 HPF for ``per_10hpf``.
        k: number of windows.

    Where the bounds are narrower than the square along an axis, the window
    spans the whole bounds along it (a smaller area, reported as such); its
    per-10-HPF density is scaled by its true area, and the Nottingham score,
    defined on 10 full fields, is None.
    """
    points = _check_points(points_um)
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be a positive whole number of windows; got {k!r}.")
    if not hpf10_area_mm2 > 0:
        raise ValueError(f"hpf10_area_mm2 must be positive; got {hpf10_area_mm2!r}.")
    area = window_area_mm2(area_mm2, fields=fields, field_diameter_mm=field_diameter_mm)
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
        nottingham = None
        if full and field_diameter_mm is not None:
            nottingham = nottingham_mitotic_score(count, window_mm2, field_diameter_mm=field_diameter_mm)
        hotspots.append(
            Hotspot(x0=x0, y0=y0, x1=x0 + side_x, y1=y0 + side_y, count=count, area_mm2=window_mm2,
                    per_10hpf=count * hpf10_area_mm2 / window_mm2, nottingham=nottingham,
                    indices=tuple(int(i) for i in np.flatnonzero(inside)))
        )  # fmt: skip
        chosen.append((x0, y0, x0 + side_x, y0 + side_y))
    return hotspots


def find_hotspot(points_um, **options):
    """The best window of ``find_hotspots`` (None when the bounds are empty)."""
    found = find_hotspots(points_um, k=1, **options)
    return found[0] if found else None
