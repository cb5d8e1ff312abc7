"""``amibr``: AMi-Br atypical mitosis crops (Bertram et al. 2025), TUPAC16 + MIDOG21 breast cancer.

``AMI-BR.csv`` (slide, dataset, uid, x, y, expert labels, majority_atypical) and
128x128 crops ``patches/{normal,atypical}/<DATASET>_<uid>.png`` with the figure
centred. Each crop's point is its centre; the normal/atypical label is kept.
Rows whose crop is absent are skipped with a warning (the crops are often
shared as a subset). Slides group by ``<dataset>/<slide>`` for splits.

Several folders (``extra_dirs``; a mixture component's ``data_dir: [amibr,
amibr_rest]``) are read as one set: their tables merged, every crop in one folder only.

The crops state no pixel size; they are taken to be at 0.25 um/px (TUPAC16's,
and MIDOG21's nominal, whose scanners range 0.23-0.26) unless the reader
option ``mpp`` (a recipe's ``data_options: {mpp: ...}``) says otherwise.
"""

import csv
import os
from collections.abc import Sequence

import numpy as np

from mitoseg_tf.data.formats.record import (
    Record,
    check_manual_dir,
    check_unique_ids,
    reader_mpp,
    require_records,
    warn_skipped,
)

NAME = "amibr"
DESCRIPTION = "AMi-Br: 128x128 mitotic-figure crops + AMI-BR.csv (normal/atypical)"
EXPECTED = "AMI-BR.csv and patches/{normal,atypical}/<DATASET>_<uid>.png"
MPP = 0.25  # assumed: see the module's docstring
CSV_NAME = "AMI-BR.csv"
REQUIRED = {"slide", "dataset", "uid", "majority_atypical"}
SEVERAL_FOLDERS = True  # reads extra_dirs


def read_table(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not REQUIRED <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(REQUIRED)}; got {reader.fieldnames}.")
        return list(reader)


def _tables(folders):
    """Rows of every folder's ``AMI-BR.csv`` by (dataset, uid); a crop described twice differently is an error."""
    rows, origin = {}, {}
    for folder in folders:
        table = os.path.join(folder, CSV_NAME)
        if not os.path.isfile(table):
            continue
        for row in read_table(table):
            key = (row["dataset"], row["uid"])
            if key in rows and rows[key] != row:
                raise ValueError(
                    f"{table}: the row of {key[0]}_{key[1]} differs from the one in {origin[key]}; "
                    "the folders' tables must agree where they overlap."
                )
            rows.setdefault(key, row)
            origin.setdefault(key, table)
    if not rows:
        raise FileNotFoundError(f"{NAME}: no {CSV_NAME} in {', '.join(folders)}; expected {EXPECTED}.")
    return list(rows.values())


def _crops(folders):
    """``{(label, file name): path}`` of the crops in every folder; one crop in two folders is an error."""
    found = {}
    for folder in folders:
        for label in ("normal", "atypical"):
            sub = os.path.join(folder, "patches", label)
            for name in sorted(os.listdir(sub)) if os.path.isdir(sub) else ():
                if not name.lower().endswith(".png"):
                    continue
                if (label, name) in found:
                    raise ValueError(
                        f"{NAME}: {name} is in both {found[(label, name)]} and {os.path.join(sub, name)}; "
                        "each crop may be in one folder only."
                    )
                found[(label, name)] = os.path.join(sub, name)
    return found


def read(
    data_dir: str | os.PathLike,
    *,
    crop_size: int = 128,
    extra_dirs: Sequence[str | os.PathLike] = (),
    mpp: float | None = None,
) -> list[Record]:
    """Records of the crops in ``data_dir`` and ``extra_dirs`` (the crops shared in parts, e.g. ``amibr_rest/``).

    Each folder holds ``patches/{normal,atypical}/`` and may hold ``AMI-BR.csv``
    (at least one must); the tables are merged, so one full table describes the
    crops of every folder.

    Args:
        data_dir: the first folder of crops.
        crop_size: the side of every crop, pixels.
        extra_dirs: further folders of crops.
        mpp: every crop's pixel size; None: ``MPP``, assumed.

    Returns:
        One ``Record`` per crop, no pixels decoded.

    Raises:
        ValueError: a folder lacks the layout, a table is malformed (the
            message names it), or no crop is found.
    """
    mpp = reader_mpp(mpp, NAME, MPP)
    folders = [data_dir, *extra_dirs]
    for folder in folders:
        check_manual_dir(folder, NAME, EXPECTED)
    centre = np.asarray([[(crop_size - 1) / 2, (crop_size - 1) / 2]], np.float32)
    crops = _crops(folders)
    records, missing, used = [], [], set()
    for row in _tables(folders):
        label = "atypical" if row["majority_atypical"].strip().lower() == "true" else "normal"
        key = (label, f"{row['dataset']}_{row['uid']}.png")
        if key not in crops:
            missing.append(os.path.join("patches", *key))
            continue
        used.add(key)
        records.append(
            Record(
                id=f"{row['dataset']}_{row['uid']}",
                image=crops[key],
                slide=f"{row['dataset']}/{row['slide']}",
                mpp=mpp,
                points=centre,
                label=label,
            )
        )
    where = ", ".join(folders)
    warn_skipped("table rows whose crop is not on disk", missing, where)
    # A crop no table describes has no slide for the split and no label check: it cannot be used.
    warn_skipped("crops that no AMI-BR.csv row describes", sorted(crops[k] for k in set(crops) - used), where)
    return require_records(check_unique_ids(records, where), where, EXPECTED)
