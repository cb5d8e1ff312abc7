"""``amibr``: AMi-Br atypical mitosis crops (Bertram et al. 2025), TUPAC16 + MIDOG21 breast cancer.

``AMI-BR.csv`` (slide, dataset, uid, x, y, expert labels, majority_atypical) and
128x128 crops ``patches/{normal,atypical}/<DATASET>_<uid>.png`` with the figure
centred. Each crop's point is its centre; the normal/atypical label is kept.
Rows whose crop is absent are skipped with a warning (the crops are often
shared as a subset). Slides group by ``<dataset>/<slide>`` for splits.
"""

import csv
import os

import numpy as np

from mitoseg_tf.data.formats.record import (
    Record,
    check_manual_dir,
    require_records,
    warn_skipped,
)

NAME = "amibr"
DESCRIPTION = "AMi-Br: 128x128 mitotic-figure crops + AMI-BR.csv (normal/atypical)"
EXPECTED = "AMI-BR.csv and patches/{normal,atypical}/<DATASET>_<uid>.png"
MPP = 0.25
CSV_NAME = "AMI-BR.csv"
REQUIRED = {"slide", "dataset", "uid", "majority_atypical"}


def read_table(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not REQUIRED <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(REQUIRED)}; got {reader.fieldnames}.")
        return list(reader)


def read(data_dir, *, crop_size=128):
    check_manual_dir(data_dir, NAME, EXPECTED)
    table = os.path.join(data_dir, CSV_NAME)
    if not os.path.isfile(table):
        raise FileNotFoundError(f"{NAME}: {table} not found; expected {EXPECTED}.")
    centre = np.asarray([[(crop_size - 1) / 2, (crop_size - 1) / 2]], np.float32)
    records, missing = [], []
    for row in read_table(table):
        label = "atypical" if row["majority_atypical"].strip().lower() == "true" else "normal"
        path = os.path.join(data_dir, "patches", label, f"{row['dataset']}_{row['uid']}.png")
        if not os.path.isfile(path):
            missing.append(path)
            continue
        records.append(
            Record(
                id=f"{row['dataset']}_{row['uid']}",
                image=path,
                slide=f"{row['dataset']}/{row['slide']}",
                mpp=MPP,
                points=centre,
                label=label,
            )
        )
    warn_skipped("table rows whose crop is not on disk", missing, data_dir)
    return require_records(records, data_dir, EXPECTED)
