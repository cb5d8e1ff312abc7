"""``tupac16``: TUPAC16 auxiliary mitosis set (and Bertram et al.'s alternative labels).

Header-less ``row,col`` CSVs per case and frame:
``mitoses_ground_truth/<case>/<frame>.csv`` (and optionally
``nonmitoses_ground_truth/<case>/<frame>.csv``, hard negatives); the image of
frame ``<case>/<frame>`` is ``<case>/<frame>.tif`` (or png/jpg) anywhere below
the folder, e.g. ``mitoses_image_data/01/01.tif``. 40x, 0.25 um/px as the
challenge states it (the files do not); the reader option ``mpp`` (a recipe's
``data_options: {mpp: ...}``) gives another.
"""

import os

import numpy as np

from mitoseg_tf.data.formats.record import (
    EMPTY_POINTS,
    Record,
    check_manual_dir,
    number_rows,
    reader_mpp,
    require_records,
    warn_skipped,
)
from mitoseg_tf.data.images import IMAGE_SUFFIXES

NAME = "tupac16"
DESCRIPTION = "TUPAC16 auxiliary set: header-less row,col centroid CSVs per case/frame"
EXPECTED = "mitoses_ground_truth/<case>/<frame>.csv and images <case>/<frame>.tif"
MPP = 0.25
MITOSES, NON_MITOSES = "mitoses_ground_truth", "nonmitoses_ground_truth"


def read_points(path):
    """(K, 2) (row, col) float32 from a header-less ``row,col`` CSV; an empty file means no figure."""
    return np.asarray(number_rows(path, lambda n: n == 2, "row,col"), np.float32).reshape(-1, 2)


def _labels(data_dir, kind):
    """``{(case, frame): csv path}`` below every ``kind`` folder."""
    found = {}
    for folder, dirs, _names in sorted(os.walk(data_dir)):
        if os.path.basename(folder) != kind:
            continue
        for case in sorted(dirs):
            for name in sorted(os.listdir(os.path.join(folder, case))):
                if name.lower().endswith(".csv"):
                    found[(case, os.path.splitext(name)[0])] = os.path.join(folder, case, name)
    return found


def _images(data_dir):
    found = {}
    for folder, _, names in sorted(os.walk(data_dir)):
        case = os.path.basename(folder)
        for name in sorted(names):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                key = (case, stem)
                if key in found:
                    raise ValueError(f"{data_dir}: two images for case {case} frame {stem}: {found[key]} and {name}.")
                found[key] = os.path.join(folder, name)
    return found


def read(data_dir: str | os.PathLike, *, mpp: float | None = None) -> list[Record]:
    """Records of every labelled frame whose image is present.

    Args:
        data_dir: the folder holding the files you obtained (``EXPECTED`` says the layout).
        mpp: every image's microns per pixel; None: ``MPP``.

    Returns:
        One ``Record`` per labelled image, no pixels decoded.

    Raises:
        ValueError: the folder lacks the layout, a file is malformed (the
            message names it), or no labelled image is found.
    """
    check_manual_dir(data_dir, NAME, EXPECTED)
    mpp = reader_mpp(mpp, NAME, MPP)
    mitoses, negatives = _labels(data_dir, MITOSES), _labels(data_dir, NON_MITOSES)
    if not mitoses:
        raise ValueError(f"{NAME}: no {MITOSES}/<case>/<frame>.csv below {data_dir}; expected {EXPECTED}.")
    images = _images(data_dir)
    records, missing = [], []
    for key in sorted(mitoses):
        if key not in images:
            missing.append(mitoses[key])
            continue
        case, frame = key
        records.append(
            Record(
                id=f"{case}_{frame}",
                image=images[key],
                slide=case,
                mpp=mpp,
                points=read_points(mitoses[key]),
                negatives=read_points(negatives[key]) if key in negatives else EMPTY_POINTS,
            )
        )
    warn_skipped("label files whose image is missing", missing, data_dir)
    return require_records(records, data_dir, EXPECTED)
