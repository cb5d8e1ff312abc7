"""``monuseg``: MoNuSeg 2018 nuclei (Kumar et al. 2017/2020), 1000x1000 H&E at 40x.

``images/<name>.tif`` with either ``masks/<name>.png`` (binary; MoNuSeg's
2-channel grey + alpha PNGs) or Aperio XML polygons ``<name>.xml`` (in
``annotations/``, ``Annotations/`` or beside the images). Polygons are
rasterised with Pillow (fill + outline), which reproduces the distributed
masks. Microns per pixel: the reader option ``mpp`` when given, else the XML's
``MicronsPerPixel`` when present, else 0.25 (40x, as the challenge states).
Slides group by TCGA case (``TCGA-XX-XXXX``). Licence: CC BY-NC-SA 4.0.
"""

import os
import xml.etree.ElementTree as ET

import numpy as np

from mitoseg_tf.data.formats.record import (
    Record,
    check_manual_dir,
    find_files,
    parse_number,
    reader_mpp,
    require_records,
)
from mitoseg_tf.data.images import list_images
from mitoseg_tf.inference.resample import check_mpp

NAME = "monuseg"
DESCRIPTION = "MoNuSeg 2018 nuclei: .tif images + binary mask PNGs or Aperio XML polygons"
EXPECTED = "images/<name>.tif and masks/<name>.png or <name>.xml"
MPP = 0.25


def read_xml(path):
    """(polygons as (N, 2) (x, y) arrays, microns per pixel or None) from an Aperio XML file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a valid XML file ({err}).") from None
    polygons = []
    for number, region in enumerate(root.iter("Region"), 1):
        where = f"{path}: Region {region.get('Id', number)}, Vertex"
        vertices = [
            tuple(parse_number(v.get(axis), f"{where} {k} {axis}") for axis in "XY")
            for k, v in enumerate(region.iter("Vertex"), 1)
        ]
        if vertices:
            polygons.append(np.asarray(vertices, np.float32))
    if not polygons:
        raise ValueError(f"{path}: no Region/Vertices polygons found; is this an Aperio annotation file?")
    stated = root.get("MicronsPerPixel")
    if not stated:
        return polygons, None
    try:
        value = float(stated)
    except ValueError:
        value = stated  # refused below, named
    return polygons, check_mpp(value, f"{path} (MicronsPerPixel)")


def read(data_dir: str | os.PathLike, *, mpp: float | None = None) -> list[Record]:
    """Records of the MoNuSeg images, each with its mask PNG or its XML outlines.

    Args:
        data_dir: the folder holding the files you obtained (``EXPECTED`` says the layout).
        mpp: every image's microns per pixel; None: the pixel size the XML states, else ``MPP``.

    Returns:
        One ``Record`` per labelled image, no pixels decoded.

    Raises:
        ValueError: the folder lacks the layout, a file is malformed (the
            message names it), or no labelled image is found.
    """
    check_manual_dir(data_dir, NAME, EXPECTED)
    given = reader_mpp(mpp, NAME)
    image_dir = os.path.join(data_dir, "images")
    images = list_images(image_dir if os.path.isdir(image_dir) else data_dir)
    mask_dir = os.path.join(data_dir, "masks")
    masks = list_images(mask_dir) if os.path.isdir(mask_dir) else {}
    xmls = find_files(data_dir, (".xml",))
    records = []
    for stem in sorted(images):
        slide = "-".join(stem.split("-")[:3])
        if stem in masks:
            records.append(Record(id=stem, image=images[stem], slide=slide, mpp=given or MPP, mask=masks[stem]))
        elif stem in xmls:
            polygons, stated = read_xml(xmls[stem])
            centroids = np.asarray([p.mean(axis=0)[::-1] for p in polygons], np.float32)
            records.append(
                Record(
                    id=stem,
                    image=images[stem],
                    slide=slide,
                    mpp=given or stated or MPP,
                    polygons=polygons,
                    points=centroids,
                )
            )
        else:
            raise ValueError(f"{NAME}: {images[stem]} has neither masks/{stem}.png nor {stem}.xml.")
    return require_records(records, data_dir, EXPECTED)
