"""Detected figures as GeoJSON that QuPath imports (File > Import objects, or drag and drop).

A FeatureCollection with one Polygon feature per figure, coordinates in
image pixels (x = column, y = row, pixel (row, col) covering
[col, col + 1) x [row, row + 1): QuPath's convention for pixel-space GeoJSON),
each ring closed. ``properties`` carry QuPath's ``objectType``
("detection"), ``classification`` ({"name", "color"}) and a
``measurements`` dict with the figure's score and area, plus the same values
as plain properties for other tools.
"""

import json
import math

CLASS_NAME = "Mitosis"
CLASS_COLOR = [255, 0, 0]


def figures_to_geojson(figures, *, class_name=CLASS_NAME, color=CLASS_COLOR):
    """A GeoJSON FeatureCollection (dict) of ``detection.figures.Figure`` objects."""
    features = []
    for index, figure in enumerate(figures):
        ring = [[float(x), float(y)] for x, y in figure.polygon]
        if ring[0] != ring[-1]:
            ring.append(list(ring[0]))
        features.append(
            {
                "type": "Feature",
                "id": f"{class_name.lower()}-{index}",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": class_name, "color": list(color)},
                    "isLocked": False,
                    "measurements": {
                        "score": float(figure.score),
                        "area_px": int(figure.area_px),
                        "area_um2": float(figure.area_um2),
                    },
                    "score": float(figure.score),
                    "centroid_x": figure.xy[0],
                    "centroid_y": figure.xy[1],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def annotation_feature(ring, *, name, color, measurements=None, feature_id=None):
    """A QuPath annotation (objectType "annotation"): a region a reader is pointed at, e.g. a hotspot window."""
    ring = [[float(x), float(y)] for x, y in ring]
    if ring[0] != ring[-1]:
        ring.append(list(ring[0]))
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "objectType": "annotation",
            "name": name,
            "classification": {"name": name, "color": list(color)},
            "isLocked": True,
            "measurements": dict(measurements or {}),
        },
    }
    if feature_id is not None:
        feature["id"] = feature_id
    return feature


def write_geojson(figures, path, *, members=None, **kwargs):
    """Write ``figures_to_geojson(figures)`` to ``path``; returns the collection.

    ``members``: top-level keys added to the collection (RFC 7946's foreign
    members, which readers such as QuPath ignore), e.g. the pixel size used.
    """
    collection = {**figures_to_geojson(figures, **kwargs), **(members or {})}
    with open(path, "w") as fh:
        json.dump(collection, fh)
    return collection


def _check_position(position, where):
    if not isinstance(position, list) or len(position) < 2:
        raise ValueError(f"{where}: a position must be a list [x, y]; got {position!r}.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in position):
        raise ValueError(f"{where}: coordinates must be finite numbers; got {position!r}.")


def validate_feature_collection(collection, *, image_shape=None):
    """Raise ValueError unless ``collection`` is a GeoJSON FeatureCollection of Polygons (RFC 7946 structure).

    Checks: member types, a Feature per entry with ``geometry`` and
    ``properties``, Polygon coordinates as a list of linear rings, each ring
    with >= 4 positions whose first and last are equal; with ``image_shape``
    (height, width), every position lies within the image in pixels
    (0 <= x <= width, 0 <= y <= height).
    """
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise ValueError("not a GeoJSON FeatureCollection (type must be 'FeatureCollection').")
    features = collection.get("features")
    if not isinstance(features, list):
        raise ValueError("a FeatureCollection needs a 'features' list.")
    for i, feature in enumerate(features):
        where = f"feature {i}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise ValueError(f"{where}: type must be 'Feature'.")
        if "properties" not in feature or not (
            feature["properties"] is None or isinstance(feature["properties"], dict)
        ):
            raise ValueError(f"{where}: needs 'properties' (an object or null).")
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
            raise ValueError(f"{where}: geometry must be a Polygon.")
        rings = geometry.get("coordinates")
        if not isinstance(rings, list) or not rings:
            raise ValueError(f"{where}: Polygon coordinates must be a non-empty list of linear rings.")
        for j, ring in enumerate(rings):
            if not isinstance(ring, list) or len(ring) < 4:
                raise ValueError(f"{where} ring {j}: a linear ring needs at least 4 positions.")
            for position in ring:
                _check_position(position, f"{where} ring {j}")
            if ring[0] != ring[-1]:
                raise ValueError(f"{where} ring {j}: not closed (first position {ring[0]} != last {ring[-1]}).")
            if image_shape is not None:
                height, width = image_shape[:2]
                for x, y in (p[:2] for p in ring):
                    if not (0 <= x <= width and 0 <= y <= height):
                        raise ValueError(
                            f"{where} ring {j}: position ({x}, {y}) lies outside the {width}x{height} image."
                        )
    return True
