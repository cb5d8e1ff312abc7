"""The files ``predict_slide(..., out_dir=DIR)`` writes per slide ``NAME`` (level-0 pixels unless said).

``NAME`` is the slide's whole file name, suffix included (``a.svs.geojson``),
so slides that differ only by suffix (``a.svs``, ``a.tif``) keep their files apart.

- ``NAME.geojson``: every figure as a QuPath detection of the detector's class
  and each hotspot window (square or circle) as a QuPath annotation ("Hotspot 1", ...);
- ``NAME_figures.csv``: one row per figure, numbered best score first: x, y in
  pixels and in microns (``Figure.xy``; microns are pixels times mpp), score, area;
- ``NAME_thumbnail.jpg``: the slide shrunk to at most 1280 px, tissue outlined,
  figures ringed in their class's colour, hotspots outlined in yellow with
  their count, the slide's count in a corner;
- ``NAME_heatmap.jpg``: figures per mm^2 smoothed over a field (0.25 mm), over
  the thumbnail, with the count and the peak density;
- ``NAME_tissue.png``: the tissue mask (255 = tissue) at its own resolution;
- ``NAME_summary.json``: ``SlideResult.summary()`` as one JSON line.

All are written to temporary names and renamed at the end, so an error
never leaves a half-written set.
"""

import json
import math
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw

from mitoseg_tf.detection.drawing import (
    OVERVIEW_MAX_SIDE,
    caption,
    class_colour,
    count_text,
    font,
    marker_style,
    ring,
    save_picture,
)
from mitoseg_tf.detection.geojson import annotation_feature, figures_to_geojson
from mitoseg_tf.detection.table import write_figures_csv

# Sized like a field's overview: a 2048 px PNG thumbnail was 8 MB, more than a screen shows.
THUMBNAIL_SIZE = OVERVIEW_MAX_SIDE
HEATMAP_SIGMA_UM = 250.0  # half a 0.5-mm field: the scale at which a pathologist judges density
TISSUE_COLOUR = (40, 40, 40)  # neutral: green and cyan are the classes' colours
HOTSPOT_COLOUR = (255, 200, 0)


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


def _tissue_at(result, shape):
    return cv2.resize(result.tissue.mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _slide_count(result):
    """ "12 mitoses in 85.3 mm^2 of tissue": the count every slide picture carries."""
    return f"{count_text(result.count, result.object_class)} in {result.tissue_area_mm2:.3g} mm^2 of tissue"


def _thumbnail_points(result, downsample):
    """Each figure's (x, y) in the thumbnail's pixels (the frame of ``Figure.xy``, shrunk)."""
    return [(x / downsample, y / downsample) for x, y in (f.xy for f in result.figures)]


def draw_thumbnail(result, thumbnail, downsample):
    """``thumbnail`` (level 0 shrunk by ``downsample``) with tissue outline, figures, hotspots and the count."""
    picture = Image.fromarray(np.ascontiguousarray(thumbnail))
    draw = ImageDraw.Draw(picture)
    # cv2 only finds the outline; PIL draws it, as it draws every other picture in the package.
    contours, _ = cv2.findContours(_tissue_at(result, thumbnail.shape), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        points = [tuple(map(float, p)) for p in contour.reshape(-1, 2)]
        draw.line(points + points[:1], fill=TISSUE_COLOUR, width=2)
    colour = class_colour(result.object_class)
    points = _thumbnail_points(result, downsample)
    for x, y in points:
        # PIL draws in pixel-index coordinates: the index of the pixel holding corner-frame x is x - 0.5.
        if result.object_class == "Mitosis":
            ring(draw, (y - 0.5, x - 0.5), 6, 2, colour)
        else:
            # Thousands of nuclei would merge into a blot as rings; dots keep the tissue visible.
            draw.ellipse((x - 1.5, y - 1.5, x + 0.5, y + 0.5), fill=colour)
    style = marker_style(thumbnail.shape)
    lettering = font(style["font_size"])
    for rank, hot in enumerate(result.hotspots, start=1):
        outline = [(x / result.mpp / downsample, y / result.mpp / downsample) for x, y in hot.outline_um()]
        draw.line(outline + outline[:1], fill=HOTSPOT_COLOUR, width=2)
        x0, y0 = (v / result.mpp / downsample for v in hot.bounds_um[:2])
        draw.text(
            (x0 + 3, max(0, y0 - 4)),
            f"hotspot {rank}: {hot.count}",
            font=lettering,
            fill=HOTSPOT_COLOUR,
            anchor="ld",
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    return caption(np.asarray(picture), _slide_count(result), avoid=points)


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
    text = f"{_slide_count(result)}; peak {peak:.3g} {noun} per mm^2 (blue 0, red peak)"
    return caption(picture, text, avoid=_thumbnail_points(result, downsample))


def write_slide_outputs(result, slide, out_dir, stem):
    """Write every per-slide file of ``result`` (see the module docstring); returns {kind: path}."""
    downsample = max(1.0, max(slide.dimensions) / float(THUMBNAIL_SIZE))
    thumbnail = slide.read_downsampled(downsample)
    base = os.path.join(out_dir, stem)
    paths = {
        "geojson": base + ".geojson",
        "figures_csv": base + "_figures.csv",
        "thumbnail": base + "_thumbnail.jpg",
        "heatmap": base + "_heatmap.jpg",
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
        if kind == "tissue":
            return lambda temp: Image.fromarray(pictures[kind]).save(temp, format="PNG")
        if kind in pictures:
            return lambda temp: save_picture(pictures[kind], temp)
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
    write_figures_csv(result.figures, result.mpp, path)
