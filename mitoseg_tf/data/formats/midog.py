"""``midog``: MIDOG 2021 / MIDOG++ (Aubreville et al. 2023), COCO-style JSON.

``images[]`` (``file_name``, ``width``, ``height``, ``tumor_type``) and
``annotations[]`` with ``bbox`` = [x1, y1, x2, y2] (50-pixel boxes around the
figure), ``category_id`` 1 = mitotic figure, 2 = hard negative (look-alike).
Box centres are the points; hard negatives are kept for hard-negative
sampling. Images (about 7000x5000) go in the same folder as the JSON or below
it; images the JSON lists but the folder lacks are skipped with a warning
(people often work on a subset). Each image is one case, so it is its own slide.

The database states no pixel size, and MIDOG's scanners differ (about 0.23 to
0.26 um/px); every image is taken to be at 0.25 unless the reader option
``mpp`` (a recipe's ``data_options: {mpp: ...}``) says otherwise, e.g. for a
subset from one scanner.
"""

import json
import os

import numpy as np

from mitoseg_tf.config import require_fields
from mitoseg_tf.data.formats.record import (
    Record,
    check_manual_dir,
    parse_number,
    reader_mpp,
    require_records,
    warn_skipped,
)
from mitoseg_tf.data.images import IMAGE_SUFFIXES
from mitoseg_tf.data.points import boxes_to_points

NAME = "midog"
DESCRIPTION = "MIDOG / MIDOG++: COCO-style JSON, boxes, category 1 mitotic figure / 2 hard negative"
EXPECTED = "a MIDOG*.json annotation database and the image files it names"
MPP = 0.25  # assumed: MIDOG's scanners range 0.23-0.26 um/px and the database does not record it per image
MITOTIC_FIGURE, HARD_NEGATIVE = 1, 2


def read_database(path):
    """``{file_name: {"width", "height", "tumour_type", "points", "negatives"}}`` from a MIDOG JSON."""
    try:
        with open(path) as fh:
            db = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(db, dict) or not {"images", "annotations"} <= set(db):
        raise ValueError(f"{path}: expected a COCO-style object with 'images' and 'annotations'.")
    if not db["images"]:
        raise ValueError(f"{path}: the database lists no images.")
    if not isinstance(db["images"], list) or not isinstance(db["annotations"], list):
        raise ValueError(f"{path}: 'images' and 'annotations' must be lists.")
    by_id = {}
    for index, img in enumerate(db["images"]):
        where = f"{path}: images[{index}]"
        require_fields(img, ("id", "file_name", "width", "height"), where)
        size = [parse_number(img[k], f"{where} ({img['file_name']}), {k}") for k in ("width", "height")]
        if min(size) < 1 or any(v != int(v) for v in size):
            raise ValueError(f"{where} ({img['file_name']}): width and height must be whole numbers >= 1; got {size}.")
        by_id[img["id"]] = {
            "file_name": img["file_name"],
            "width": int(size[0]),
            "height": int(size[1]),
            "tumour_type": img.get("tumor_type", ""),
            "boxes": {MITOTIC_FIGURE: [], HARD_NEGATIVE: []},
        }
    for index, ann in enumerate(db["annotations"]):
        where = f"{path}: annotations[{index}]"
        require_fields(ann, ("image_id", "category_id", "bbox"), where)
        where += f" (id {ann.get('id')})"
        if ann["image_id"] not in by_id:
            raise ValueError(f"{where} refers to unknown image id {ann['image_id']}.")
        if ann["category_id"] not in (MITOTIC_FIGURE, HARD_NEGATIVE):
            raise ValueError(f"{where} has category {ann['category_id']}; expected 1 or 2.")
        box = ann["bbox"]
        if not isinstance(box, list) or len(box) != 4:
            raise ValueError(f"{where}: bbox must be [x1, y1, x2, y2]; got {box!r}.")
        by_id[ann["image_id"]]["boxes"][ann["category_id"]].append([parse_number(v, f"{where}, bbox") for v in box])
    out = {}
    for img in by_id.values():
        out[img["file_name"]] = {
            "width": img["width"],
            "height": img["height"],
            "tumour_type": img["tumour_type"],
            "points": boxes_to_points(np.asarray(img["boxes"][MITOTIC_FIGURE], np.float32)),
            "negatives": boxes_to_points(np.asarray(img["boxes"][HARD_NEGATIVE], np.float32)),
        }
    return out


def _database_path(data_dir):
    candidates = sorted(n for n in os.listdir(data_dir) if n.lower().endswith(".json") and "midog" in n.lower())
    if len(candidates) != 1:
        raise ValueError(f"{NAME}: expected exactly one MIDOG*.json in {data_dir}; found {candidates or 'none'}.")
    return os.path.join(data_dir, candidates[0])


def read(data_dir: str | os.PathLike, *, mpp: float | None = None) -> list[Record]:
    """Records of the images the JSON lists and the folder holds.

    Args:
        data_dir: the folder holding the files you obtained (``EXPECTED`` says the layout).
        mpp: every image's microns per pixel; None: ``MPP``, assumed.

    Returns:
        One ``Record`` per labelled image, no pixels decoded.

    Raises:
        ValueError: the folder lacks the layout, a file is malformed (the
            message names it), or no labelled image is found.
    """
    check_manual_dir(data_dir, NAME, EXPECTED)
    mpp = reader_mpp(mpp, NAME, MPP)
    db = read_database(_database_path(data_dir))
    files = {}
    for folder, _, names in sorted(os.walk(data_dir)):
        for name in names:
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                files.setdefault(name, os.path.join(folder, name))
    records, missing = [], []
    for file_name in sorted(db):
        if file_name not in files:
            missing.append(file_name)
            continue
        entry = db[file_name]
        stem = os.path.splitext(file_name)[0]
        records.append(
            Record(
                id=stem,
                image=files[file_name],
                slide=stem,
                mpp=mpp,
                points=entry["points"],
                negatives=entry["negatives"],
                tumour_type=entry["tumour_type"],
            )
        )
    warn_skipped("images listed in the JSON but not on disk", missing, data_dir)
    return require_records(records, data_dir, EXPECTED)
