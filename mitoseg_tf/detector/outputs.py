"""What ``mitoseg predict`` writes per image: maps, pictures a person can read, GeoJSON and a counts row.

Per image ``NAME`` in the output folder:
``NAME_probability.png`` (probability x 255), ``NAME_mask.png`` (0 / 255),
``NAME_overlay.jpg`` (full size, each figure ringed and labelled "#number
score", the count in a corner), ``NAME_overview.jpg`` (the same shrunk to at
most 1280 px, for a screen), ``NAME_gallery.jpg`` (every kept figure's crop
in number order, its number, score and (x, y) beneath: how pathologists review
candidates), ``NAME_figures.csv`` (one row per figure: number, x, y in pixels
and microns, score, area), ``NAME_labels.json`` (where each number is written
on the overlay, overview and gallery, for tools that link the pictures) and
``NAME.geojson`` (QuPath detections of the detector's class, "Mitosis" or
"Nucleus"; its top-level ``mpp`` and ``mpp_source`` say which pixel size was
used and where it came from, as counts.csv's columns do).

Positions are (x, y) from the image's top-left corner, pixel (row, col)
covering [col, col + 1) x [row, row + 1): ``Figure.xy``, and microns are those
times ``mpp``. The maps stay PNG (lossless values); the pictures are JPEG,
since a PNG of a stained 2084 px field is 9 MB of photographic noise.
"""

import json
import os

import numpy as np
from PIL import Image

from mitoseg_tf.detection.counting import DEFAULT_HPF10_AREA_MM2
from mitoseg_tf.detection.drawing import (
    class_colour,
    draw_figures,
    gallery,
    number_figures,
    overview,
    save_picture,
)
from mitoseg_tf.detection.geojson import write_geojson
from mitoseg_tf.detection.table import write_figures_csv
from mitoseg_tf.errors import error_message

LABELS_ABOUT = (
    "number: the figure's number in NAME_figures.csv and on every picture; x, y: its centroid in pixels from the "
    "top-left corner, in the picture's pixels (the gallery: in the image's, as its captions say); box: x0, y0, x1, y1 "
    "in the picture's pixels of the number's lettering (the gallery: of the figure's crop)"
)

COUNT_COLUMNS = (
    "image",
    "status",
    "height",
    "width",
    "mpp",
    "mpp_source",
    "area_mm2",
    "object_class",
    "count",
    "per_mm2",
    "per_10hpf",
    "settings",
)


def write_prediction(prediction, image, out_dir, stem):
    """Write the per-image files of a ``Prediction`` of ``image`` into ``out_dir``; returns their paths."""
    base = os.path.join(out_dir, stem)
    paths = {}
    if prediction.probability is not None:
        probability = prediction.probability
        paths["probability"] = base + "_probability.png"
        Image.fromarray(np.round(np.clip(probability, 0, 1) * 255).astype(np.uint8)).save(paths["probability"])
        paths["mask"] = base + "_mask.png"
        Image.fromarray((probability > prediction.settings.pixel_threshold).astype(np.uint8) * 255).save(paths["mask"])
    figures = number_figures(prediction.figures)
    kind = prediction.object_class
    numbers = range(1, len(figures) + 1)
    overlay, overlay_labels = draw_figures(image, figures, class_name=kind, numbers=numbers, return_labels=True)
    small, overview_labels = overview(image, figures, class_name=kind, return_labels=True)
    crops, gallery_labels = gallery(image, figures, class_name=kind, return_labels=True)
    labels = {
        "count": len(figures),
        "object_class": kind,
        "about": LABELS_ABOUT,
    }
    for name, picture, drawn in (
        ("overlay", overlay, overlay_labels),
        ("overview", small, overview_labels),
        ("gallery", crops, gallery_labels),
    ):
        paths[name] = save_picture(picture, f"{base}_{name}.jpg")
        labels[name] = {"file": os.path.basename(paths[name]), "size": list(picture.shape[1::-1]), "labels": drawn}
    paths["figures_csv"] = base + "_figures.csv"
    write_figures_csv(figures, prediction.mpp, paths["figures_csv"])
    paths["labels"] = base + "_labels.json"
    with open(paths["labels"], "w") as fh:
        json.dump(labels, fh, indent=1)
    paths["geojson"] = base + ".geojson"
    write_geojson(
        figures,
        paths["geojson"],
        class_name=prediction.object_class,
        color=list(class_colour(prediction.object_class)),
        members={"mpp": prediction.mpp, "mpp_source": prediction.mpp_source},
    )
    return paths


def counts_row(name, prediction, *, hpf10_area_mm2=DEFAULT_HPF10_AREA_MM2):
    """One ``counts.csv`` row; per 10 HPF is left empty for nuclei."""
    density = prediction.density(hpf10_area_mm2=hpf10_area_mm2)
    return {
        "image": name,
        "status": "ok",
        "height": prediction.image_shape[0],
        "width": prediction.image_shape[1],
        "mpp": prediction.mpp,
        "mpp_source": prediction.mpp_source,
        "area_mm2": f"{density['area_mm2']:.6g}",
        "object_class": prediction.object_class,
        "count": density["count"],
        "per_mm2": f"{density['per_mm2']:.6g}",
        "per_10hpf": f"{density['per_10hpf']:.6g}" if "per_10hpf" in density else "",
        "settings": prediction.settings.describe(prediction.rescored),
    }


def failed_row(name, error):
    return {column: "" for column in COUNT_COLUMNS} | {"image": name, "status": f"failed: {error_message(error)}"}
