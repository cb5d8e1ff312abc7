"""Detection and counting: figures from a probability map, matching to true centres, counts and grading.

>>> from mitoseg_tf.detection import extract_figures, match_points, select_threshold
>>> figures = extract_figures(probability, mpp=0.25)
"""

from mitoseg_tf.detection.counting import (
    DEFAULT_FIELD_DIAMETER_MM,
    DEFAULT_HPF10_AREA_MM2,
    NOTTINGHAM_MITOSIS_TABLE,
    count_density,
    field_area_mm2,
    image_area_mm2,
    nottingham_mitotic_score,
)
from mitoseg_tf.detection.figures import (
    DEFAULT_MIN_AREA_UM2,
    Figure,
    extract_figures,
    mask_centroids,
)
from mitoseg_tf.detection.geojson import (
    figures_to_geojson,
    validate_feature_collection,
    write_geojson,
)
from mitoseg_tf.detection.matching import (
    DEFAULT_MATCH_DISTANCE_UM,
    detection_scores,
    match_points,
    score_images,
    select_threshold,
)
from mitoseg_tf.detection.rescoring import classify_centres, cut_windows, rescore_figures

__all__ = [
    "DEFAULT_FIELD_DIAMETER_MM",
    "DEFAULT_HPF10_AREA_MM2",
    "DEFAULT_MATCH_DISTANCE_UM",
    "DEFAULT_MIN_AREA_UM2",
    "NOTTINGHAM_MITOSIS_TABLE",
    "Figure",
    "classify_centres",
    "count_density",
    "cut_windows",
    "detection_scores",
    "extract_figures",
    "field_area_mm2",
    "figures_to_geojson",
    "image_area_mm2",
    "mask_centroids",
    "match_points",
    "nottingham_mitotic_score",
    "rescore_figures",
    "score_images",
    "select_threshold",
    "validate_feature_collection",
    "write_geojson",
]
