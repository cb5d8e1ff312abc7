"""What ``mitoseg predict`` writes per image: maps, pictures a person can read, GeoJSON and a counts row.

Per image ``NAME`` in the output folder:
``NAME_probability.png`` (probability x 255), ``NAME_mask.png`` (0 / 255),
``NAME_overlay.png`` (full size, each figure circled with its score),
``NAME_overview.png`` (the overlay shrunk to a screen, for big fields),
``NAME_gallery.png`` (every kept figure's crop, best first: how pathologists
review candidates) and ``NAME.geojson`` (QuPath detections of the detector's
class, "Mitosis" or "Nucleus"; its top-level ``mpp`` and ``mpp_source`` say
which pixel size was used and where it came from, as counts.csv's columns do).
"""

import os

import numpy as np
from PIL import Image

from mitoseg_tf.detection.counting import DEFAULT_HPF10_AREA_MM2
from mitoseg_tf.detection.drawing import class_colour, draw_figures, gallery, overview
from mitoseg_tf.detection.geojson import write_geojson

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
    figures = list(prediction.figures)
    pictures = {
        "overlay": draw_figures(image, figures, class_name=prediction.object_class),
        "overview": overview(image, figures, class_name=prediction.object_class),
        "gallery": gallery(image, figures),
    }
    for kind, picture in pictures.items():
        paths[kind] = f"{base}_{kind}.png"
        Image.fromarray(picture).save(paths[kind])
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
    return {column: "" for column in COUNT_COLUMNS} | {"image": name, "status": f"failed: {error}"}
