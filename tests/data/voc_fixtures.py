"""Pascal VOC, MITOS-ATYPIA-14-as-VOC and split AMi-Br folders written in the shape users bring them."""

import csv
import os

from format_fixtures import save, tissue

AMIBR_COLUMNS = ["", "slide", "dataset", "uid", "x", "y", "majority_atypical"]


def voc_xml(path, objects, size=None, filename="x.jpg"):
    """A VOC annotation: ``objects`` = [(name, (xmin, ymin, xmax, ymax))]; ``size`` = (height, width)."""
    parts = [f"<annotation><filename>{filename}</filename>"]
    if size:
        parts.append(f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>")
    for name, (x0, y0, x1, y1) in objects:
        parts.append(
            f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("".join(parts))
    return path


def atypia14_train(root, frames, size=(120, 140)):
    """``root/images/<slide>_<frame>.jpg`` + ``root/annotations/<stem>.xml`` (the shared folder's layout);
    ``frames`` = {stem: [(row, col) mitoses]}.

    Boxes are 60x60 around each mitosis, clipped at the frame edge as in the preset's description.
    """
    height, width = size
    for index, (stem, centres) in enumerate(sorted(frames.items())):
        save(os.path.join(root, "images", f"{stem}.jpg"), tissue(height, width, seed=index))
        boxes = [
            ("mitosis", (max(c - 30, 0), max(r - 30, 0), min(c + 30, width), min(r + 30, height))) for r, c in centres
        ]
        voc_xml(os.path.join(root, "annotations", f"{stem}.xml"), boxes, size=size, filename=f"{stem}.jpg")


def amibr_parts(first, second, rows_first, rows_second, table_in=("first",)):
    """AMi-Br crops split over two folders; ``rows_*`` = [(slide, uid, atypical)] whose crops each folder holds."""
    table = [
        {"": i, "slide": s, "dataset": "MIDOG21", "uid": u, "x": 0, "y": 0, "majority_atypical": str(a)}
        for i, (s, u, a) in enumerate(rows_first + rows_second)
    ]
    for folder, rows, name in ((first, rows_first, "first"), (second, rows_second, "second")):
        for _slide, uid, atypical in rows:
            label = "atypical" if atypical else "normal"
            save(os.path.join(folder, "patches", label, f"MIDOG21_{uid}.png"), tissue(128, 128, seed=uid))
        if name in table_in:
            with open(os.path.join(folder, "AMI-BR.csv"), "w", newline="") as fh:
                writer = csv.DictWriter(fh, AMIBR_COLUMNS)
                writer.writeheader()
                writer.writerows(table)
