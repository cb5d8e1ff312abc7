"""``mitos_atypia14``: MITOS-ATYPIA-14 (ICPR 2014 contest) mitosis centres.

Two layouts are read:
- the original release: per frame ``<frame>_mitosis.csv`` and
  ``<frame>_not_mitosis.csv`` anywhere below the folder, lines
  ``x,y,confidence`` (x = column); images ``<frame>.tiff`` (or png/jpg) anywhere
  below. ``not_mitosis`` points are kept as hard negatives; the confidence of
  each mitosis is kept with ``min_confidence`` to filter.
- the third-party point list ``points_validation.txt``: lines
  ``<folder>/<slide>/<frame> x y``; images named ``<frame>``.

Frames are named ``<scanner><slide>_<field>...``: A = Aperio ScanScope XT
(0.2455 um/px), H = Hamamatsu NanoZoomer 2.0-HT (0.2273 um/px). The files
state no pixel size: it is the named scanner's. A frame with no known scanner
letter is refused unless the reader option ``mpp`` (a recipe's
``data_options: {mpp: ...}``) gives the pixel size, which then holds for every frame.
"""

import functools
import os

import numpy as np

from mitoseg_tf.data.formats.record import (
    EMPTY_POINTS,
    Record,
    check_manual_dir,
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

NAME = "mitos_atypia14"
DESCRIPTION = "MITOS-ATYPIA-14: per-frame mitosis / not_mitosis centroid CSVs, or a points_validation.txt list"
EXPECTED = "<frame>.tiff with <frame>_mitosis.csv (and _not_mitosis.csv), or points_validation.txt + images"
MPP = {"A": 0.2455, "H": 0.2273}
SCANNERS = {"A": "Aperio ScanScope XT", "H": "Hamamatsu NanoZoomer 2.0-HT"}
POINT_LIST = "points_validation.txt"


def read_frame_csv(path, min_confidence=0.0):
    """(K, 2) (row, col) float32 of the ``x,y,confidence`` lines with confidence >= ``min_confidence``."""
    rows = number_rows(path, lambda n: n in (2, 3), "x,y,confidence")
    points = [(r[1], r[0]) for r in rows if (r[2] if len(r) == 3 else 1.0) >= min_confidence]
    return np.asarray(points, np.float32).reshape(-1, 2)


def read_point_list(path):
    """``{frame: (K, 2) (row, col)}`` from the third-party ``<dir>/<slide>/<frame> x y`` list."""
    points = {}
    with open(path) as fh:
        for number, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(
                    f"{path}, line {number}: expected '<folder>/<slide>/<frame> x y'; got {line.strip()!r}."
                )
            x, y = (parse_number(v, f"{path}, line {number} (x and y)") for v in parts[1:])
            points.setdefault(os.path.basename(parts[0]), []).append((y, x))
    return {k: np.asarray(v, np.float32) for k, v in points.items()}


def read(data_dir: str | os.PathLike, *, min_confidence: float = 0.0, mpp: float | None = None) -> list[Record]:
    """Records of either layout (``EXPECTED``).

    Args:
        data_dir: the folder holding the files you obtained.
        min_confidence: points whose confidence (a frame CSV's third column) is below this are left out.
        mpp: every frame's microns per pixel; None: its scanner's.

    Returns:
        One ``Record`` per labelled frame, no pixels decoded.

    Raises:
        ValueError: the folder lacks the layout, a file is malformed (the
            message names it), or no labelled frame is found.
    """
    check_manual_dir(data_dir, NAME, EXPECTED)
    meta = functools.partial(scanner_meta, name=NAME, mpps=MPP, scanners=SCANNERS, mpp=reader_mpp(mpp, NAME))
    images = find_files(data_dir, IMAGE_SUFFIXES)
    point_list = os.path.join(data_dir, POINT_LIST)
    if os.path.isfile(point_list):
        return records_from_point_list(read_point_list(point_list), images, point_list, meta, EXPECTED)
    csvs = find_files(data_dir, (".csv",))
    records, unlabelled = [], []
    for frame in sorted(images):
        if frame + "_mitosis" not in csvs:
            unlabelled.append(images[frame])
            continue
        negatives = csvs.get(frame + "_not_mitosis")
        records.append(
            Record(
                id=frame,
                image=images[frame],
                points=read_frame_csv(csvs[frame + "_mitosis"], min_confidence),
                negatives=read_frame_csv(negatives) if negatives else EMPTY_POINTS,
                **meta(frame),
            )
        )
    warn_skipped("frames without a <frame>_mitosis.csv", unlabelled, data_dir)
    return require_records(records, data_dir, EXPECTED)
