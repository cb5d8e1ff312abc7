"""Small files written in exactly the shape of each public format (for formats with no real files here)."""

import json
import os

import numpy as np
from PIL import Image


def tissue(height, width, seed=0):
    """A pinkish uint8 RGB image with a few dark-purple blobs, enough to look like H&E."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[...] = (230, 170, 200)
    image = np.clip(image.astype(int) + rng.integers(-15, 15, image.shape), 0, 255).astype(np.uint8)
    return image


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def folder_layout(root, count=3, size=(64, 80)):
    """images/ + masks/ with one square object per image; returns the masks by name."""
    masks = {}
    for i in range(count):
        mask = np.zeros(size, np.uint8)
        mask[10 + i : 20 + i, 30:40] = 255
        save(os.path.join(root, "images", f"tile{i}.png"), tissue(*size, seed=i))
        save(os.path.join(root, "masks", f"tile{i}.png"), mask)
        masks[f"tile{i}"] = mask // 255
    return masks


def mitos12_pixels(root):
    """Original MITOS-2012: A00_00.bmp + A00_00.csv, one line of x,y pixel pairs per mitosis."""
    save(os.path.join(root, "A00_00.bmp"), tissue(60, 70))
    save(os.path.join(root, "A01_02.bmp"), tissue(60, 70, seed=1))
    # mitosis 1: pixels (x=5..6, y=10); mitosis 2: pixel (x=50, y=40)
    with open(os.path.join(root, "A00_00.csv"), "w") as fh:
        fh.write("5,10,6,10\n50,40\n")
    open(os.path.join(root, "A01_02.csv"), "w").close()  # a field without mitoses


def atypia14_frames(root):
    """Original MITOS-ATYPIA-14: frames/x40/<frame>.tiff + mitosis/<frame>_mitosis.csv and _not_mitosis.csv."""
    for frame, seed in (("A03_00Aa", 0), ("H05_01Bc", 1)):
        save(os.path.join(root, frame[:3], "frames", "x40", f"{frame}.tiff"), tissue(80, 90, seed))
    mitosis = os.path.join(root, "A03", "mitosis")
    os.makedirs(mitosis, exist_ok=True)
    with open(os.path.join(mitosis, "A03_00Aa_mitosis.csv"), "w") as fh:
        fh.write("20,30,1\n70,60,0.5\n")  # x, y, confidence
    with open(os.path.join(mitosis, "A03_00Aa_not_mitosis.csv"), "w") as fh:
        fh.write("40,50,0.33\n")
    mitosis = os.path.join(root, "H05", "mitosis")
    os.makedirs(mitosis, exist_ok=True)
    open(os.path.join(mitosis, "H05_01Bc_mitosis.csv"), "w").close()


def tupac16_frames(root):
    """mitoses_ground_truth/<case>/<frame>.csv (row,col) + images mitoses_image_data/<case>/<frame>.tif."""
    for case, frame, rows in (("01", "01", "10,20\n30,40\n"), ("02", "05", "")):
        save(os.path.join(root, "mitoses_image_data", case, f"{frame}.tif"), tissue(50, 60, int(case)))
        os.makedirs(os.path.join(root, "mitoses_ground_truth", case), exist_ok=True)
        with open(os.path.join(root, "mitoses_ground_truth", case, f"{frame}.csv"), "w") as fh:
            fh.write(rows)
    os.makedirs(os.path.join(root, "nonmitoses_ground_truth", "01"), exist_ok=True)
    with open(os.path.join(root, "nonmitoses_ground_truth", "01", "01.csv"), "w") as fh:
        fh.write("45,5\n")


def midog_small(root):
    """A MIDOG++-shaped JSON over two small images: boxes [x1, y1, x2, y2], categories 1 and 2."""
    save(os.path.join(root, "001.tiff"), tissue(100, 120))
    save(os.path.join(root, "002.tiff"), tissue(100, 120, seed=1))
    db = {
        "info": {},
        "licenses": [],
        "categories": [{"id": 1, "name": "mitotic figure"}, {"id": 2, "name": "not mitotic figure"}],
        "images": [
            {"id": 1, "file_name": "001.tiff", "width": 120, "height": 100, "tumor_type": "human breast cancer"},
            {"id": 2, "file_name": "002.tiff", "width": 120, "height": 100, "tumor_type": "canine lymphoma"},
            {"id": 3, "file_name": "003.tiff", "width": 120, "height": 100, "tumor_type": "canine lymphoma"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 60, 70]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [60, 40, 110, 90]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 50]},
        ],
    }
    with open(os.path.join(root, "MIDOG++.json"), "w") as fh:
        json.dump(db, fh)
