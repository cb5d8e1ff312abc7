"""``voc``: images with Pascal VOC XML box files (``<object><name>``, ``<bndbox>`` xmin/ymin/xmax/ymax).

Layouts (files paired by stem; one folder is read, not its sub-folders):
- one folder: ``NAME.jpg`` beside ``NAME.xml``;
- the VOC devkit's ``JPEGImages/NAME.jpg`` + ``Annotations/NAME.xml``;
- images in the folder or in ``images/``, their XML in ``annotations/`` (the ``atypia14_train`` preset).

Each box's centre is a point (row, col); ``masks="box"`` draws the boxes as
the mask instead of disks of ``radius_um`` around the centres. Every object's
class name must be one of ``figure_classes`` (points) or ``negative_classes``
(hard negatives), compared without case; the names of the figures are kept
(``classes``, aligned with ``points``). Coordinates are read as 0-based pixel
positions (the VOC devkit's are 1-based: its centres land one pixel right of
and below the true ones, a quarter of a micron).

The pixel size is not in VOC files, so ``mpp`` is required. Presets fill the
layout, pixel size and box rules of a known set:

``preset="atypia14_train"``: MITOS-ATYPIA-14's training frames as
``atypia14_train/images/<slide>_<frame>.jpg`` + ``atypia14_train/annotations/<stem>.xml``,
frames of 1663x1485 (46 of the published frames are 1662 wide; sizes are compared to within one pixel) from the Hamamatsu NanoZoomer 2.0-HT at x40 (0.2273 um/px,
the contest's description), slide = the file name's prefix (``H03``). Each
mitosis is one 60x60 box centred on it, clipped at the frame edge: the middle
of a clipped box is not the mitosis, so on a clipped side the centre is taken
30 px in from the unclipped side (a box of 45 px touching the left edge, x 0-45,
is a mitosis at x = 15). A box narrower than 60 px away from the edge is an
error: it is not the layout the preset describes.

Bad input is one ValueError naming the file: XML that does not parse or lacks
a box field, boxes outside the image or with no extent, an XML whose image is
missing, an image without XML (unless ``missing_annotation="empty"``: a frame
without figures), a class outside the lists, a frame of another size than the preset's.
"""

import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence

import numpy as np

from mitoseg_tf.data.formats.record import EMPTY_POINTS, Record, check_manual_dir, parse_number, require_records
from mitoseg_tf.data.images import image_size, list_images

NAME = "voc"
DESCRIPTION = "Pascal VOC XML boxes beside the images (box centres as points; mpp required)"
EXPECTED = (
    "images with same-named Pascal VOC .xml files: one folder, JPEGImages/ + Annotations/, or images + annotations/"
)
IMAGE_DIRS = ("JPEGImages", "images")
ANNOTATION_DIRS = ("Annotations", "annotations")
FIGURE_CLASSES = ("mitosis", "mitotic figure")
NEGATIVE_CLASSES = ("non-mitosis", "not_mitosis", "hard negative")
MASKS = ("disk", "box")
MISSING = ("error", "empty")
# Boxes of a fixed side may differ from it by rounding in the converter that wrote them.
BOX_TOLERANCE_PX = 2.0
# The ATYPIA-14 converter wrote 46 frames 1662 px wide whose XML <size> still says 1663: a frame or
# declared size one pixel off is the same frame, two pixels off is another image.
SIZE_TOLERANCE_PX = 1

PRESETS = {
    "atypia14_train": dict(
        mpp=0.2273,
        scanner="Hamamatsu NanoZoomer 2.0-HT",
        frame_size=(1485, 1663),  # (height, width)
        box_size=60.0,
        slide_pattern=r"^([^_]+)_",
        figure_classes=("mitosis",),
        negative_classes=(),
    ),
}


def _number(node, tag, path, index):
    return parse_number(node.findtext(tag), f"{path}: object {index}, <bndbox><{tag}>")


def read_xml(path):
    """``[(class name, [xmin, ymin, xmax, ymax]), ...]`` and the ``(height, width)`` of ``<size>`` (None if absent)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as err:
        raise ValueError(f"{path}: not valid Pascal VOC XML ({err}).") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: the root element is <{root.tag}>; Pascal VOC files have <annotation>.")
    size = None
    if root.find("size") is not None:
        try:
            size = (int(float(root.findtext("size/height"))), int(float(root.findtext("size/width"))))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: <size> needs numeric <width> and <height>.") from None
    objects = []
    for index, obj in enumerate(root.iter("object")):
        name, box = (obj.findtext("name") or "").strip(), obj.find("bndbox")
        if not name or box is None:
            raise ValueError(f"{path}: object {index} needs a <name> and a <bndbox>.")
        objects.append((name, [_number(box, tag, path, index) for tag in ("xmin", "ymin", "xmax", "ymax")]))
    return objects, size


def _fixed_box_centre(low, high, extent, box_size, path, axis):
    """Centre along one axis of a ``box_size`` box centred on the figure, clipped to ``[0, extent]``."""
    width = high - low
    if abs(width - box_size) <= BOX_TOLERANCE_PX:
        return (low + high) / 2
    if width < box_size:
        at_start, at_end = low <= 1.0, high >= extent - 2.0
        if at_start and not at_end:
            return high - box_size / 2
        if at_end and not at_start:
            return low + box_size / 2
    raise ValueError(
        f"{path}: a box spans {axis} {low:g}-{high:g} ({width:g} px); the boxes are {box_size:g} px wide, "
        "narrower only where the frame edge clips them."
    )


def box_centres(boxes, shape, path, box_size=None):
    """(K, 2) (row, col) centres of ``boxes`` (K, 4) [xmin, ymin, xmax, ymax] in an image of ``shape``; checked."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = shape
    for x0, y0, x1, y1 in boxes:
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height or x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"{path}: box x {x0:g}-{x1:g}, y {y0:g}-{y1:g} is outside the {width}x{height} (WxH) image "
                "or has no extent; boxes must lie within the image with xmin < xmax and ymin < ymax."
            )
    if box_size is None:
        return np.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], 1).astype(np.float32)
    rows = [_fixed_box_centre(y0, y1, height, box_size, path, "y") for _, y0, _, y1 in boxes]
    cols = [_fixed_box_centre(x0, x1, width, box_size, path, "x") for x0, _, x1, _ in boxes]
    return np.stack([rows, cols], 1).astype(np.float32).reshape(-1, 2)


def _same_size(a, b):
    return all(abs(int(x) - int(y)) <= SIZE_TOLERANCE_PX for x, y in zip(a, b))


def _folder(data_dir, names):
    for name in names:
        if os.path.isdir(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    return data_dir


def _xml_files(folder):
    return {
        os.path.splitext(n)[0]: os.path.join(folder, n)
        for n in sorted(os.listdir(folder))
        if n.lower().endswith(".xml")
    }


def _slide(stem, slide_pattern):
    if not slide_pattern:
        return stem
    match = re.search(slide_pattern, stem)
    if not match:
        raise ValueError(f"{NAME}: slide_pattern {slide_pattern!r} does not match the file name {stem!r}.")
    return match.group(1) if match.groups() else match.group(0)


def _options(preset, **given):
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"{NAME}: unknown preset {preset!r}; presets: {', '.join(PRESETS)}.")
    base = dict(
        mpp=None,
        scanner="",
        frame_size=None,
        box_size=None,
        slide_pattern=None,
        figure_classes=None,
        negative_classes=None,
    )
    base.update(PRESETS.get(preset, {}))
    base.update({k: v for k, v in given.items() if v is not None})
    return base


def _checked_options(preset, masks, missing_annotation, **given):
    """The preset's options under those given, once ``mpp``, ``masks`` and ``missing_annotation`` are known good."""
    o = _options(preset, **given)
    if o["mpp"] is None:
        raise ValueError(
            f"{NAME}: give mpp, the microns per pixel of the images (e.g. options: {{mpp: 0.25}}); VOC files do not "
            f"record it. Presets that know it: {', '.join(PRESETS)}."
        )
    if masks not in MASKS:
        raise ValueError(f"{NAME}: masks must be one of {', '.join(MASKS)}; got {masks!r}.")
    if missing_annotation not in MISSING:
        raise ValueError(f"{NAME}: missing_annotation must be one of {', '.join(MISSING)}; got {missing_annotation!r}.")
    return o


def _paired_files(data_dir, missing_annotation):
    """``({stem: image}, {stem: xml})`` of the layout; every XML has its image, every image its XML unless allowed."""
    images = list_images(_folder(data_dir, IMAGE_DIRS))
    xmls = _xml_files(_folder(data_dir, ANNOTATION_DIRS))
    orphans = sorted(set(xmls) - set(images))
    if orphans:
        raise ValueError(f"{NAME}: {xmls[orphans[0]]} has no image of the same name ({len(orphans)} such XML files).")
    unlabelled = sorted(set(images) - set(xmls))
    if unlabelled and missing_annotation == "error":
        raise ValueError(
            f"{NAME}: {images[unlabelled[0]]} has no XML file of the same name ({len(unlabelled)} such images); "
            "pass missing_annotation='empty' if images without XML are frames without figures."
        )
    return images, xmls


def _objects(image, xml, shape, figures, negatives):
    """The ``(name, box)`` objects of ``xml`` (none without one), checked against ``image``'s ``shape`` and the classes."""
    objects, declared = read_xml(xml) if xml is not None else ([], None)
    if declared is not None and not _same_size(declared, shape):
        raise ValueError(
            f"{xml}: <size> says {declared[1]}x{declared[0]} (WxH) but {image} is {shape[1]}x{shape[0]}; "
            "the XML belongs to another image."
        )
    unknown = sorted({name for name, _ in objects if name.lower() not in figures | negatives})
    if unknown:
        raise ValueError(
            f"{xml}: unknown class(es) {unknown}; accepted as figures: {sorted(figures)}, as hard negatives: "
            f"{sorted(negatives) or 'none'} (reader options figure_classes / negative_classes)."
        )
    return objects


def _record(stem, image, xml, o, preset, masks, figures, negatives):
    """The ``Record`` of one image and its XML (None: a frame without figures), every check made."""
    shape = image_size(image)
    if o["frame_size"] is not None and not _same_size(shape, o["frame_size"]):
        raise ValueError(
            f"{image}: {shape[1]}x{shape[0]} (WxH) image; the {preset} preset's frames are "
            f"{o['frame_size'][1]}x{o['frame_size'][0]} (another scanner's frame would get the wrong mpp)."
        )
    objects = _objects(image, xml, shape, figures, negatives)
    where = image if xml is None else xml
    figure_objects = [(n, b) for n, b in objects if n.lower() in figures]
    figure_boxes = np.asarray([b for _, b in figure_objects], np.float64).reshape(-1, 4)
    negative_boxes = np.asarray([b for n, b in objects if n.lower() in negatives], np.float64).reshape(-1, 4)
    points = box_centres(figure_boxes, shape, where, o["box_size"])
    drawn = [np.asarray([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) for x0, y0, x1, y1 in figure_boxes]
    return Record(
        id=stem,
        image=image,
        slide=_slide(stem, o["slide_pattern"]),
        mpp=float(o["mpp"]),
        points=points if len(points) else EMPTY_POINTS,
        negatives=box_centres(negative_boxes, shape, where, o["box_size"]) if len(negative_boxes) else EMPTY_POINTS,
        polygons=drawn if masks == "box" else None,
        scanner=o["scanner"],
        classes=tuple(n for n, _ in figure_objects),
    )


def read(
    data_dir: str | os.PathLike,
    *,
    mpp: float | None = None,
    preset: str | None = None,
    masks: str = "disk",
    figure_classes: Sequence[str] | None = None,
    negative_classes: Sequence[str] | None = None,
    slide_pattern: str | None = None,
    box_size: float | None = None,
    missing_annotation: str = "error",
    frame_size: tuple[int, int] | None = None,
) -> list[Record]:
    """Records of a VOC folder.

    Args:
        data_dir: the folder (``EXPECTED`` says the layout).
        mpp, preset, masks, figure_classes, negative_classes, slide_pattern,
            box_size, missing_annotation: see the module docstring; None takes
            the preset's value, else the module's default.
        frame_size: (height, width) every image must have (a preset's by default).

    Returns:
        One ``Record`` per image, no pixels decoded.

    Raises:
        ValueError: the folder lacks the layout, an XML file is malformed or
            names an unknown class (the message names it), an image is missing
            its annotation (unless ``missing_annotation`` allows it), or no image is found.
    """
    check_manual_dir(data_dir, NAME, EXPECTED)
    o = _checked_options(
        preset,
        masks,
        missing_annotation,
        mpp=mpp,
        figure_classes=figure_classes,
        negative_classes=negative_classes,
        slide_pattern=slide_pattern,
        box_size=box_size,
        frame_size=frame_size,
    )
    figures = {c.lower() for c in o["figure_classes"] or FIGURE_CLASSES}
    negatives = {c.lower() for c in (NEGATIVE_CLASSES if o["negative_classes"] is None else o["negative_classes"])}
    images, xmls = _paired_files(data_dir, missing_annotation)
    records = [
        _record(stem, images[stem], xmls.get(stem), o, preset, masks, figures, negatives) for stem in sorted(images)
    ]
    return require_records(records, data_dir, EXPECTED)
