"""What every format reader returns: one ``Record`` per image, and how a record becomes an example.

Readers only parse annotation files and pair them with images (cheap: no pixels
are decoded); ``load_example`` decodes one image, renders its mask and checks
that the labels fit it. Centroids are (row, col) pixels everywhere.
"""

import csv
import dataclasses
import logging
import math
import os

import numpy as np

from mitoseg_tf.data.images import read_image, read_label_image
from mitoseg_tf.data.points import DEFAULT_RADIUS_UM, check_points, points_to_mask
from mitoseg_tf.inference.resample import check_mpp

log = logging.getLogger("mitoseg_tf.data")

EMPTY_POINTS = np.zeros((0, 2), np.float32)


@dataclasses.dataclass
class Record:
    """One image and its labels, before any pixel is read.

    The mask comes from exactly one of: ``mask`` (a label image), ``polygons``
    (list of (N, 2) (x, y) vertex arrays, e.g. MoNuSeg XML), ``pixels`` (list of
    (N, 2) (row, col) arrays, one per object, MITOS-2012) or, when all are
    None, the ``points`` drawn as disks (``points_to_mask``).
    """

    id: str
    image: str
    slide: str
    mpp: float
    points: np.ndarray = dataclasses.field(default_factory=lambda: EMPTY_POINTS)
    negatives: np.ndarray = dataclasses.field(default_factory=lambda: EMPTY_POINTS)
    mask: str | None = None
    polygons: list | None = None
    pixels: list | None = None
    scanner: str = ""
    tumour_type: str = ""
    label: str = ""
    classes: tuple = ()  # class name of each point, where the format names them (VOC)

    def __post_init__(self):
        # The one pixel-size rule, whichever reader (or reader option, or annotation file) gave it.
        self.mpp = check_mpp(self.mpp, f"{self.image or self.id} (its pixel size)")
        # No reader may pass on a NaN or infinite coordinate: it would draw nothing, or crash far from here.
        where = f"record {self.id!r} ({self.image})"
        for kind in ("points", "negatives"):
            check_finite(getattr(self, kind), f"{where}, {kind}")
        for kind in ("polygons", "pixels"):
            for index, shape in enumerate(getattr(self, kind) or ()):
                check_finite(shape, f"{where}, {kind}[{index}]")

    @property
    def mask_from_points(self):
        return self.mask is None and self.polygons is None and self.pixels is None


def parse_number(text, where):
    """``text`` (a string from a label file) as a finite float; else a ValueError naming ``where`` and the text."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is not a finite number.")
    return value


def check_finite(values, where):
    """``values`` (coordinates) numeric and finite; else a ValueError naming ``where`` and the first bad value."""
    try:
        array = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: coordinates must be numbers; got {values!r}.") from None
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{where}: {int(bad.sum())} coordinate(s) are not finite numbers (e.g. {array[bad][0]}).")
    return values


def _polygons_to_mask(polygons, shape):
    from PIL import Image, ImageDraw

    # Pillow fills the polygon and its outline, which is how MoNuSeg's own binary
    # masks were drawn: rasterising the XML this way reproduces them (tested).
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        if len(poly) >= 2:
            draw.polygon([(float(x), float(y)) for x, y in poly], fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8)


def _pixels_to_mask(pixels, shape, where):
    mask = np.zeros(shape, np.uint8)
    for obj in pixels:
        obj = np.asarray(obj).reshape(-1, 2)
        check_points(obj, shape, where)
        mask[obj[:, 0].astype(int), obj[:, 1].astype(int)] = 1
    return mask


def mask_centroids(mask):
    """Centroids (row, col) of the connected components of a binary mask, float32 (K, 2)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask > 0)
    if count == 0:
        return EMPTY_POINTS
    return np.asarray(ndimage.center_of_mass(mask > 0, labels, range(1, count + 1)), np.float32).reshape(-1, 2)


def load_example(record, *, radius_um=DEFAULT_RADIUS_UM, refine=False):
    """Decode ``record``: ``{"image", "mask", "points", "negatives", "id", "slide", ...}`` (NumPy)."""
    image = read_image(record.image)
    shape = image.shape[:2]
    where = f"{record.image}"
    # Check labels against the image before drawing them, so the error names the file.
    points = check_points(record.points, shape, f"{where} (points)")
    negatives = check_points(record.negatives, shape, f"{where} (hard negatives)")
    if record.mask is not None:
        mask = read_label_image(record.mask, shape)
    elif record.polygons is not None:
        mask = _polygons_to_mask(record.polygons, shape)
    elif record.pixels is not None:
        mask = _pixels_to_mask(record.pixels, shape, f"{where} (pixel list)")
    else:
        mask = points_to_mask(record.points, shape, mpp=record.mpp, radius_um=radius_um, image=image, refine=refine)
    if not record.mask_from_points and len(points) == 0:
        points = mask_centroids(mask)  # objects given as masks: their centroids are the points
    return {
        "image": image,
        "mask": mask,
        "points": points,
        "negatives": negatives,
        "id": record.id,
        "slide": record.slide,
        "mpp": np.float32(record.mpp),
        "scanner": record.scanner,
        "tumour_type": record.tumour_type,
        "label": record.label,
        "classes": list(record.classes),
    }


def check_unique_ids(records, where):
    seen = {}
    for rec in records:
        if rec.id in seen:
            raise ValueError(
                f"{where}: two images share the name {rec.id!r} ({seen[rec.id]} and {rec.image}); "
                "names must be unique so that labels cannot be paired with the wrong image."
            )
        seen[rec.id] = rec.image
    return records


def warn_skipped(what, items, where):
    """Log one warning with the count and the first few of ``items`` skipped (documented skips only)."""
    if items:
        shown = ", ".join(str(i) for i in list(items)[:3])
        log.warning("%s: skipped %d %s (e.g. %s)", where, len(items), what, shown)


def require_records(records, where, expected):
    if not records:
        raise ValueError(f"{where}: found no usable images; expected {expected}.")
    return records


def records_from_point_list(points, images, list_path, meta, expected):
    """One record per image of a folder whose centres come from one list file.

    ``points``: ``{image stem: (K, 2)}`` read from ``list_path``; ``images``:
    ``{stem: path}``; ``meta(stem)``: the record's slide, mpp and scanner. Every
    image is a field, so one the list does not name has no figure; a name the
    list gives but the folder lacks is an error (its labels would be lost).
    """
    unknown = sorted(set(points) - set(images))
    if unknown:
        folder = os.path.dirname(list_path)
        raise ValueError(f"{list_path}: lists images that are not in {folder}: {', '.join(unknown[:3])}.")
    records = [Record(id=s, image=images[s], points=points.get(s, EMPTY_POINTS), **meta(s)) for s in sorted(images)]
    return require_records(records, os.path.dirname(list_path), expected)


def find_files(root, suffixes):
    """``{stem: path}`` of files below ``root`` (recursive) with one of ``suffixes``; duplicates are errors."""
    found = {}
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in suffixes:
                path = os.path.join(folder, name)
                if stem in found:
                    raise ValueError(
                        f"{root}: two files named {stem!r} ({found[stem]} and {path}); "
                        "pairing labels by name would be ambiguous."
                    )
                found[stem] = path
    return found


def reader_mpp(mpp, name, default=None):
    """A reader's ``mpp`` option through the one pixel-size rule; ``default`` (the format's own) when None."""
    return default if mpp is None else check_mpp(mpp, f"{name}: the reader option mpp")


def scanner_meta(stem, name, mpps, scanners, mpp=None):
    """Slide, mpp and scanner of a field named ``<scanner letter><slide>_<field>``; ``mpp``: given for every field.

    A letter that names no known scanner has no known pixel size: a ValueError
    asks for the reader option ``mpp`` rather than guessing one.
    """
    letter = stem[:1].upper()
    if mpp is None and letter not in mpps:
        known = ", ".join(f"{k} = {scanners[k]} ({v} um/px)" for k, v in mpps.items())
        raise ValueError(
            f"{name}: image {stem!r} names no known scanner ({known}), so its pixel size is unknown; give "
            "it with the reader option mpp (a recipe's data_options: {mpp: ...})."
        )
    return dict(slide=stem.split("_")[0], mpp=mpps[letter] if mpp is None else mpp, scanner=scanners.get(letter, ""))


def check_manual_dir(data_dir, name, expected):
    if data_dir is None:
        raise ValueError(f"{name}: give --data-dir, the folder holding the files you obtained ({expected}).")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{name}: data dir {data_dir} does not exist; expected {expected}.")
    if not any(os.scandir(data_dir)):
        raise ValueError(f"{name}: data dir {data_dir} is empty; expected {expected}.")


def number_rows(path, accepts, expected):
    """Lists of floats, one per non-empty line of a header-less CSV; ``accepts(count)`` says
    whether a line may hold that many values, ``expected`` describes the format for errors."""
    rows = []
    with open(path, newline="") as fh:
        for number, row in enumerate(csv.reader(fh), 1):
            values = [v.strip() for v in row if v.strip()]
            if not values:
                continue
            if not accepts(len(values)):
                raise ValueError(f"{path}, line {number}: expected {expected}; got {len(values)} values.")
            rows.append([parse_number(v, f"{path}, line {number} (expected {expected})") for v in values])
    return rows
