"""``mitos12``: MITOS-2012 (ICPR 2012 contest), Roux et al. 2013.

Two layouts are read:
- the original release: ``A00_00.bmp`` beside ``A00_00.csv``, one line per
  mitosis listing the pixels that belong to it (``x1,y1,x2,y2,...``, x =
  column, y = row): pixel-level masks.
- a centre list: ``mitoses.csv`` with a header ``image,x,y`` and the images in
  ``images/`` (the form kept in ``shared/data/mitos12_dev``); masks are disks.

Image names are ``<scanner><slide>_<field>``: scanner A (Aperio XT, 0.2456
um/px), H (Hamamatsu, 0.2273 um/px), M (multispectral, 0.185 um/px). The files
state no pixel size: it is the named scanner's. A name with no known scanner
letter is refused unless the reader option ``mpp`` (a recipe's
``data_options: {mpp: ...}``) gives the pixel size, which then holds for every image.
"""

import csv
import functools
import os

import numpy as np

from mitoseg_tf.data.formats.record import (
    Record,
    check_manual_dir,
    check_unique_ids,
    find_files,
    number_rows,
    parse_number,
    reader_mpp,
    records_from_point_list,
    require_records,
    scanner_meta,
    warn_skipped,
)
from mitoseg_tf.data.images import IMAGE_SUFFIXES

NAME = "mitos12"
DESCRIPTION = "MITOS-2012: per-image CSV of mitosis pixels (original) or a mitoses.csv centre list"
EXPECTED = "A00_00.bmp + A00_00.csv pairs, or mitoses.csv (image,x,y) + images/"
MPP = {"A": 0.2456, "H": 0.2273, "M": 0.185}
SCANNERS = {"A": "Aperio ScanScope XT", "H": "Hamamatsu NanoZoomer", "M": "10-band multispectral microscope"}


def read_pixel_csv(path):
    """List of (N, 2) (row, col) int arrays, one per mitosis line of an original MITOS-2012 CSV."""
    rows = number_rows(path, lambda n: n % 2 == 0, "x1,y1,x2,y2,... (x,y pairs)")
    return [np.asarray(r).reshape(-1, 2)[:, ::-1].astype(np.int64) for r in rows]


def read_centre_list(path):
    """``{image stem: (K, 2) (row, col)}`` from a ``image,x,y`` CSV with a header."""
    points = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"image", "x", "y"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a header with columns image,x,y; got {reader.fieldnames}.")
        for number, row in enumerate(reader, 2):
            where = f"{path}, line {number} (x and y)"
            point = (parse_number(row["y"], where), parse_number(row["x"], where))
            points.setdefault(row["image"], []).append(point)
    return {k: np.asarray(v, np.float32) for k, v in points.items()}


def read(data_dir: str | os.PathLike, *, mpp: float | None = None) -> list[Record]:
    """Records of either layout (``EXPECTED``).

    Args:
        data_dir: the folder holding the files you obtained (``EXPECTED`` says the layout).
        mpp: every image's microns per pixel; None: its scanner's.

    Returns:
        One ``Record`` per labelled image, no pixels decoded.

    Raises:
        ValueError: the folder lacks the layout, a file is malformed (the
            message names it), or no labelled image is found.
    """
    check_manual_dir(data_dir, NAME, EXPECTED)
    meta = functools.partial(scanner_meta, name=NAME, mpps=MPP, scanners=SCANNERS, mpp=reader_mpp(mpp, NAME))
    centre_list = os.path.join(data_dir, "mitoses.csv")
    images = find_files(data_dir, IMAGE_SUFFIXES)
    if os.path.isfile(centre_list):
        return records_from_point_list(read_centre_list(centre_list), images, centre_list, meta, EXPECTED)
    csvs = find_files(data_dir, (".csv",))
    records, unlabelled = [], []
    for stem in sorted(images):
        if stem not in csvs:
            unlabelled.append(images[stem])
            continue
        pixels = read_pixel_csv(csvs[stem])
        centres = np.asarray([obj.mean(axis=0) for obj in pixels], np.float32).reshape(-1, 2)
        records.append(Record(id=stem, image=images[stem], pixels=pixels, points=centres, **meta(stem)))
    warn_skipped("images without a CSV of the same name", unlabelled, data_dir)
    orphans = sorted(set(csvs) - set(images))
    warn_skipped("CSVs without an image", orphans, data_dir)
    return require_records(check_unique_ids(records, data_dir), data_dir, EXPECTED)
