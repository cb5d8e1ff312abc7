"""The files ``predict_slide(..., out_dir=DIR)`` writes per slide ``NAME`` (level-0 pixels unless said).

``NAME`` is the slide's whole file name, suffix included (``a.svs.geojson``),
so slides that differ only by suffix (``a.svs``, ``a.tif``) keep their files apart.

- ``NAME.geojson``: every figure as a QuPath detection of the detector's class
  and each hotspot window (square or circle) as a QuPath annotation ("Hotspot 1", ...);
- ``NAME_figures.csv``: one row per figure: x, y in pixels and in microns, score, area;
- ``NAME_thumbnail.png``: the slide shrunk, tissue outlined, figures ringed in
  their class's colour, hotspots outlined in yellow with their count;
- ``NAME_heatmap.png``: figures per mm^2 smoothed over a field (0.25 mm), over the thumbnail;
- ``NAME_tissue.png``: the tissue mask (255 = tissue) at its own resolution;
- ``NAME_summary.json``: ``SlideResult.summary()`` as one JSON line.

All are written to temporary names and renamed at the end, so an error
never leaves a half-written set.
"""

import csv
import json
import math
import os

import cv2
import numpy as np
from PIL import Image

from mitoseg_tf.detection.drawing import class_colour
from mitoseg_tf.detection.geojson import annotation_feature, figures_to_geojson

THUMBNAIL_SIZE = 2048
HEATMAP_SIGMA_UM = 250.0  # half a 0.5-mm field: the scale at which a pathologist judges density
TISSUE_COLOUR = (40, 40, 40)  # neutral: green and cyan are the classes' colours
HOTSPOT_COLOUR = (255, 200, 0)
FIGURE_COLUMNS = ("index", "x_px", "y_px", "x_um", "y_um", "score", "area_um2")


def hotspot_features(result):
    """QuPath annotations of the hotspot windows, in level-0 pixels."""
    features = []
    for rank, hot in enumerate(result.hotspots, start=1):
        outline = [(x / result.mpp, y / result.mpp) for x, y in hot.outline_um()]
        measurements = {
            "count": hot.count,
            "area_mm2": hot.area_mm2,
            "tissue_area_mm2": hot.tissue_area_mm2,
            "per_10hpf": hot.per_10hpf,
        }
        if hot.nottingham is not None:
            measurements["nottingham_mitotic_score"] = hot.nottingham
        features.append(
            annotation_feature(
                outline,
                name=f"Hotspot {rank}",
                color=HOTSPOT_COLOUR,
                measurements=measurements,
                feature_id=f"hotspot-{rank}",
            )
        )
    return features


def slide_geojson(result):
    collection = figures_to_geojson(
        result.figures, class_name=result.object_class, color=list(class_colour(result.object_class))
    )
    collection["features"].extend(hotspot_features(result))
    return collection


def _figure_rows(result):
    positions = result.positions_um()
    for i, (figure, (x_um, y_um)) in enumerate(zip(result.figures, positions)):
        yield {
            "index": i,
            "x_px": f"{figure.centroid[1]:.2f}",
            "y_px": f"{figure.centroid[0]:.2f}",
            "x_um": f"{x_um:.2f}",
            "y_um": f"{y_um:.2f}",
            "score": f"{figure.score:.4f}",
            "area_um2": f"{figure.area_um2:.2f}",
        }


def _tissue_at(result, shape):
    return cv2.resize(result.tissue.mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def draw_thumbnail(result, thumbnail, downsample):
    """``thumbnail`` (level 0 shrunk by ``downsample``) with tissue outline, figures and hotspots drawn."""
    picture = np.ascontiguousarray(thumbnail.copy())
    contours, _ = cv2.findContours(_tissue_at(result, picture.shape), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(picture, contours, -1, TISSUE_COLOUR, 2)
    colour = class_colour(result.object_class)
    # Thousands of nuclei would merge into a blot as rings; dots keep the tissue visible.
    radius, thickness = (6, 2) if result.object_class == "Mitosis" else (1, -1)
    for figure in result.figures:
        centre = (
            int(round((figure.centroid[1] + 0.5) / downsample)),
            int(round((figure.centroid[0] + 0.5) / downsample)),
        )
        cv2.circle(picture, centre, radius, colour, thickness, lineType=cv2.LINE_AA)
    for rank, hot in enumerate(result.hotspots, start=1):
        outline = np.array([(x / result.mpp / downsample, y / result.mpp / downsample) for x, y in hot.outline_um()])
        cv2.polylines(picture, [np.round(outline).astype(np.int32)], True, HOTSPOT_COLOUR, 2, lineType=cv2.LINE_AA)
        x0, y0 = (int(round(v / result.mpp / downsample)) for v in hot.bounds_um[:2])
        cv2.putText(
            picture,
            f"#{rank}: {hot.count}",
            (x0 + 3, max(12, y0 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            HOTSPOT_COLOUR,
            1,
            cv2.LINE_AA,
        )
    return picture


def density_map(result, shape, downsample):
    """Figures per mm^2, smoothed with a Gaussian of ``HEATMAP_SIGMA_UM``, on a grid of ``shape`` pixels."""
    # Smoothing on a grid of sigma / 4 cells, then enlarging: a 250-um Gaussian at thumbnail scale is a
    # kernel thousands of pixels wide.
    cell_um = max(HEATMAP_SIGMA_UM / 4.0, result.mpp * downsample)
    width_um, height_um = (v * result.mpp for v in result.dimensions)
    grid = (max(1, int(math.ceil(height_um / cell_um))), max(1, int(math.ceil(width_um / cell_um))))
    counts = np.zeros(grid, np.float32)
    for x_um, y_um in result.positions_um():
        counts[min(grid[0] - 1, int(y_um // cell_um)), min(grid[1] - 1, int(x_um // cell_um))] += 1
    sigma = HEATMAP_SIGMA_UM / cell_um
    smooth = cv2.GaussianBlur(counts, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    return cv2.resize(smooth / (cell_um * 1e-3) ** 2, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def draw_heatmap(result, thumbnail, downsample):
    density = density_map(result, thumbnail.shape, downsample)
    peak = float(density.max())
    scaled = np.round(density / peak * 255).astype(np.uint8) if peak > 0 else np.zeros(density.shape, np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    tissue = _tissue_at(result, thumbnail.shape).astype(bool)
    picture = thumbnail.copy()
    picture[tissue] = (0.45 * thumbnail[tissue] + 0.55 * colour[tissue]).astype(np.uint8)
    noun = "mitoses" if result.object_class == "Mitosis" else "nuclei"
    cv2.putText(
        picture,
        f"peak {peak:.3g} {noun} per mm^2 (blue 0, red peak)",
        (8, 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    return picture


def write_slide_outputs(result, slide, out_dir, stem):
    """Write every per-slide file of ``result`` (see the module docstring); returns {kind: path}."""
    downsample = max(1.0, max(slide.dimensions) / float(THUMBNAIL_SIZE))
    thumbnail = slide.read_downsampled(downsample)
    base = os.path.join(out_dir, stem)
    paths = {
        "geojson": base + ".geojson",
        "figures_csv": base + "_figures.csv",
        "thumbnail": base + "_thumbnail.png",
        "heatmap": base + "_heatmap.png",
        "tissue": base + "_tissue.png",
        "summary": base + "_summary.json",
    }
    result.outputs = dict(paths)
    pictures = {
        "thumbnail": draw_thumbnail(result, thumbnail, downsample),
        "heatmap": draw_heatmap(result, thumbnail, downsample),
        "tissue": result.tissue.mask.astype(np.uint8) * 255,
    }
    geojson = slide_geojson(result)

    def writer(kind):
        if kind in pictures:
            return lambda temp: Image.fromarray(pictures[kind]).save(temp, format="PNG")
        if kind == "geojson":
            return lambda temp: _dump_json(geojson, temp)
        if kind == "summary":
            return lambda temp: _dump_json(result.summary(), temp, newline=True)
        return lambda temp: _write_csv(result, temp)

    # Every file to a temporary name first: an error in any of them leaves no file of the set half-written.
    staged = []
    try:
        for kind, path in paths.items():
            staged.append((_stage(path, writer(kind)), path))
    except BaseException:
        for temp, _ in staged:
            os.remove(temp)
        raise
    for temp, path in staged:
        os.replace(temp, path)
    return paths


def _stage(path, write):
    temp = f"{path}.partial{os.path.splitext(path)[1]}"
    try:
        write(temp)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return temp


def _dump_json(payload, path, newline=False):
    with open(path, "w") as fh:
        json.dump(payload, fh, allow_nan=False, default=_json_default)
        if newline:
            fh.write("\n")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not math.isfinite(value) else float(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _write_csv(result, path):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIGURE_COLUMNS)
        writer.writeheader()
        writer.writerows(_figure_rows(result))
