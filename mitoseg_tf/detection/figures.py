"""Probability map or mask -> mitotic figures (connected components) with centroid, area, score and outline."""

import dataclasses

import numpy as np
from skimage import measure

SCORES = ("mean", "max")
DEFAULT_MIN_AREA_UM2 = 5.0


@dataclasses.dataclass(frozen=True)
class Figure:
    """One detected mitotic figure, in pixel coordinates of the image it came from.

    Positions follow one convention, (x, y), in the frame where pixel (row,
    col) covers [col, col + 1) x [row, row + 1) (QuPath's and most viewers'):
    ``xy`` is the centroid there, ``polygon`` is a closed ring (first == last)
    of (x, y) vertices tracing the component's outer boundary, so every vertex
    lies within [0, width] x [0, height]; ``positions_um()`` of a prediction is
    ``xy`` times the pixel size, and the CSV, GeoJSON and picture labels the
    package writes use the same numbers.

    ``row_col`` is the centroid as a NumPy index (row, col), pixel centres at
    integers, for indexing arrays: ``xy == (col + 0.5, row + 0.5)``. The
    stored field ``centroid`` holds that (row, col) index; it keeps its name so
    existing code and cached tiles still load, but new code should say
    ``row_col`` or ``xy``.
    """

    centroid: tuple  # (row, col) array index; read it as ``row_col``
    area_px: int
    area_um2: float
    score: float
    polygon: tuple
    bbox: tuple  # (min_row, min_col, max_row, max_col), max exclusive

    @property
    def row_col(self):
        """The centroid as a NumPy index (row, col), pixel centres at integers."""
        return (float(self.centroid[0]), float(self.centroid[1]))

    @property
    def xy(self):
        """The centroid as (x, y) pixels from the image's top-left corner, the frame of ``polygon`` and GeoJSON."""
        return (float(self.centroid[1]) + 0.5, float(self.centroid[0]) + 0.5)


def _outline(component_mask):
    """Closed (x, y) ring around a binary component along its pixels' outer edges (corners cut diagonally)."""
    padded = np.pad(component_mask.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    # -1 undoes the pad; +0.5 moves from pixel-centre to pixel-corner coordinates
    ring = max(contours, key=len) - 0.5
    ring = measure.approximate_polygon(ring, tolerance=0.5)
    if len(ring) < 4 or not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    return tuple((float(c), float(r)) for r, c in ring)


def extract_figures(
    probability,
    *,
    mpp,
    threshold=0.5,
    min_area_um2=DEFAULT_MIN_AREA_UM2,
    score="mean",
    connectivity=2,
    outlines=True,
):
    """Mitotic figures in a probability map (or a 0/1 mask) of one image.

    Pixels above ``threshold`` form the mask; its connected components
    (8-connectivity by default, scikit-image ``label``) smaller than
    ``min_area_um2`` square microns (``mpp`` microns per pixel) are dropped as
    specks. Each figure's score is the ``mean`` or ``max`` probability over
    its pixels (1.0 for a binary mask). ``outlines=False`` leaves ``polygon``
    empty: tracing outlines is most of the cost, and scoring needs only centres.

    Returns a list of ``Figure`` sorted by descending score.
    """
    probability = np.asarray(probability, dtype=np.float32)
    if probability.ndim != 2:
        raise ValueError(f"extract_figures takes one (height, width) map; got shape {probability.shape}.")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}; got {score!r}.")
    if not mpp or mpp <= 0:
        raise ValueError(f"mpp (microns per pixel) must be positive; got {mpp!r}.")
    if min_area_um2 < 0:
        raise ValueError(f"min_area_um2 must be >= 0; got {min_area_um2!r}.")
    labels = measure.label(probability > threshold, connectivity=connectivity)
    pixel_area = float(mpp) ** 2
    figures = []
    for region in measure.regionprops(labels, intensity_image=probability):
        area_um2 = region.area * pixel_area
        if area_um2 < min_area_um2:
            continue
        values = region.image_intensity[region.image]
        min_row, min_col, max_row, max_col = region.bbox
        ring = np.asarray(_outline(region.image) if outlines else np.zeros((0, 2))) + np.array(
            [min_col, min_row], dtype=np.float64
        )
        figures.append(
            Figure(
                centroid=(float(region.centroid[0]), float(region.centroid[1])),
                area_px=int(region.area),
                area_um2=float(area_um2),
                score=float(values.mean() if score == "mean" else values.max()),
                polygon=tuple(map(tuple, ring.tolist())),
                bbox=(int(min_row), int(min_col), int(max_row), int(max_col)),
            )
        )
    return sorted(figures, key=lambda f: -f.score)


def mask_centroids(mask, connectivity=2):
    """(K, 2) float32 (row, col) centroids of the connected components of a binary ground-truth mask.

    What detection metrics use as the true figure centres when a data source
    has no point labels: one centre per annotated figure (touching figures
    merge into one).
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask_centroids takes one (height, width) mask; got shape {mask.shape}.")
    regions = measure.regionprops(measure.label(mask > 0, connectivity=connectivity))
    return np.array([r.centroid for r in regions], dtype=np.float32).reshape(-1, 2)


def shift_figure(figure, rows, cols):
    """``figure`` moved by (``rows``, ``cols``) pixels: from a tile's or region's frame to the whole image's."""
    r0, c0, r1, c1 = figure.bbox
    return dataclasses.replace(
        figure,
        centroid=(figure.centroid[0] + rows, figure.centroid[1] + cols),
        polygon=tuple((x + cols, y + rows) for x, y in figure.polygon),
        bbox=(r0 + rows, c0 + cols, r1 + rows, c1 + cols),
    )


def rescale_figure(figure, row_factor, col_factor):
    """``figure`` in the pixels of the same image resampled by (``row_factor``, ``col_factor``).

    Corners (outline, box) scale directly; a centroid is a pixel centre, so it
    scales about the half-pixel; the area in square microns is unchanged.
    """
    r0, c0, r1, c1 = figure.bbox
    return dataclasses.replace(
        figure,
        centroid=((figure.centroid[0] + 0.5) * row_factor - 0.5, (figure.centroid[1] + 0.5) * col_factor - 0.5),
        area_px=int(round(figure.area_px * row_factor * col_factor)),
        polygon=tuple((x * col_factor, y * row_factor) for x, y in figure.polygon),
        bbox=(
            int(np.floor(r0 * row_factor)),
            int(np.floor(c0 * col_factor)),
            int(np.ceil(r1 * row_factor)),
            int(np.ceil(c1 * col_factor)),
        ),
    )
