"""Pictures of detections a person can read: numbered figures, a screen-sized overview, a review gallery.

NumPy and PIL only (no TensorFlow), so the predict writer, the slide writer,
the evaluate command and notebooks can all call these on any machine. Every
picture in the package is drawn here with PIL (OpenCV only filters and
resamples arrays), so rings, lettering and captions look the same everywhere.

    >>> from mitoseg_tf.detection.drawing import draw_figures, overview, gallery, save_picture
    >>> save_picture(draw_figures(field, figures), "overlay.jpg")     # full size
    >>> save_picture(overview(field, figures), "overview.jpg")         # longest side 1280 px
    >>> save_picture(gallery(field, figures), "gallery.jpg")           # one crop per figure, best first

Figures are numbered 1, 2, ... in ``number_figures`` order (best score
first) on every picture: the overlay and overview write "#3 0.91" beside the
ring, the gallery writes "#3 0.91" and the figure's (x, y) under its crop, so
a crop can be found on the field even when scores tie. Every picture that
shows figures says how many there are. ``return_labels=True`` also returns
where each number was written, for files that link the pictures together.

Marker radius, line width and lettering grow with the image's longest side: a
2084 px field is usually viewed shrunk to a screen, and fixed 1 px rings and
10 px digits vanish at that size.
"""

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Bright, saturated colours that stand out on pink/purple H&E; each ring also gets a dark edge, so it
# stays visible over pale background and dark nuclei alike.
CLASS_COLOURS = {"Mitosis": (0, 235, 0), "Nucleus": (0, 200, 255)}
DEFAULT_COLOUR = (255, 230, 0)
EDGE = (0, 0, 0)
# Evaluation colours differ in shape as well as colour (circle, square, diamond) so that colour-blind
# readers can tell them apart too.
EVALUATION_STYLE = {
    "true positive": ((0, 235, 0), "circle"),
    "false positive": ((0, 190, 255), "square"),
    "missed": ((255, 230, 0), "diamond"),
}
PLURALS = {"Mitosis": "mitoses", "Nucleus": "nuclei"}
GALLERY_BACKGROUND = (255, 255, 255)
OUTSIDE_IMAGE = (190, 190, 190)  # crop area beyond the image's edge: grey, so the crop keeps its shape
# Beyond this many crops a gallery becomes a multi-megapixel PNG nobody scrolls through (nucleus
# weights find thousands per field); the caption says how many were left out.
GALLERY_MAX_FIGURES = 512
# JPEG at this quality, chroma at full resolution, keeps rings and lettering crisp: a 2084 px MITOS-2012
# field's overlay is 1.4 MB instead of an 8.5 MB PNG (stained tissue is photographic noise PNG cannot
# compress), and its overview 0.75 MB instead of 5.5.
JPEG_QUALITY = 85
# Fits a laptop screen whole; at 1600 px the overview of a stained field was over 1 MB even as JPEG.
OVERVIEW_MAX_SIDE = 1280


def _rgb(image, what="image"):
    """``image`` as a (height, width, 3) uint8 array; floats in [0, 1] are scaled to 0-255."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or min(array.shape[:2]) < 1:
        raise ValueError(
            f"{what} must be (height, width), (height, width, 3) or (height, width, 4); got shape {array.shape}."
        )
    array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{what} must hold numbers (uint8 0-255 or floats 0-1); got dtype {array.dtype}.")
    floating = np.issubdtype(array.dtype, np.floating)
    array = array.astype(np.float32)
    if floating and np.nanmax(array) <= 1.0:
        array = array * 255.0
    return np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)


def marker_style(shape):
    """``{"radius", "width", "font_size"}`` in pixels for an image of ``shape`` (height, width[, channels]).

    Proportional to the longest side, with floors that keep small tiles readable.
    """
    side = max(int(shape[0]), int(shape[1]))
    return {
        "radius": max(6, round(side / 70)),
        "width": max(2, round(side / 450)),
        "font_size": max(11, round(side / 70)),
    }


def _points(points, what):
    array = np.asarray(points if points is not None else [], dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must be (row, col) points, shape (K, 2); got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds a non-finite coordinate.")
    return array


def ring(draw, centre, radius, width, colour, shape="circle"):
    """A marker of ``shape`` around ``centre`` (row, col): a dark edge first, the colour on top."""
    row, col = centre
    for outline, line in ((EDGE, width + 2), (colour, width)):
        if shape == "circle":
            draw.ellipse((col - radius, row - radius, col + radius, row + radius), outline=outline, width=line)
        elif shape == "square":
            side = radius * 0.9
            draw.rectangle((col - side, row - side, col + side, row + side), outline=outline, width=line)
        else:
            corners = [(col, row - radius), (col + radius, row), (col, row + radius), (col - radius, row)]
            draw.line(corners + corners[:2], fill=outline, width=line, joint="curve")


def _label(draw, text, centre, radius, lettering, colour, size):
    """``text`` beside the marker at ``centre`` (row, col), kept inside the image; returns its box (x0, y0, x1, y1)."""
    height, width = size
    row, col = centre
    left, top, right, bottom = draw.textbbox((0, 0), text, font=lettering, stroke_width=2)
    gap = max(2, radius // 4)
    x = col + radius + gap
    if x + right > width:
        x = col - radius - gap - right
    y = row - (top + bottom) / 2
    x = min(max(x, 0), max(width - right, 0))
    y = min(max(y, -top), max(height - bottom, 0))
    draw.text((x, y), text, font=lettering, fill=colour, stroke_width=2, stroke_fill=EDGE)
    return [float(x + left), float(y + top), float(x + right), float(y + bottom)]


def _figure_radius(figure, base):
    """The base radius, or more when the figure itself is larger, so the ring never cuts through it."""
    r0, c0, r1, c1 = figure.bbox
    half_diagonal = 0.5 * math.hypot(r1 - r0, c1 - c0)
    return max(base, half_diagonal + base / 3)


def class_colour(class_name):
    """The RGB colour of a class in every picture and GeoJSON the package writes, so QuPath and the PNGs agree."""
    return CLASS_COLOURS.get(class_name, DEFAULT_COLOUR)


def _colour(class_name, colour):
    return tuple(colour) if colour is not None else class_colour(class_name)


def number_figures(figures):
    """``figures`` in the order they are numbered 1, 2, ... on every picture and in every figures CSV.

    Best score first; equal scores top to bottom, then left to right, so the
    numbering does not depend on the order the figures were found in.
    """
    return sorted(figures, key=lambda f: (-f.score, f.xy[1], f.xy[0]))


def font(size):
    """The package's lettering at ``size`` pixels (PIL's scalable default font: no font file to ship)."""
    return ImageFont.load_default(size=size)


def _draw_numbered(picture, figures, numbers, style, colour):
    """Rings and "#number score" labels on ``picture`` (PIL, in place); returns one label record per figure."""
    draw, lettering = ImageDraw.Draw(picture), font(style["font_size"])
    radii = [_figure_radius(figure, style["radius"]) for figure in figures]
    for figure, radius in zip(figures, radii):
        ring(draw, figure.row_col, radius, style["width"], colour)
    # Labels after every ring, so no ring is drawn over a neighbour's number.
    labels = []
    for figure, radius, number in zip(figures, radii, numbers):
        text = f"#{number} {figure.score:.2f}"
        box = _label(draw, text, figure.row_col, radius, lettering, colour, (picture.height, picture.width))
        x, y = figure.xy
        labels.append({"number": number, "text": text, "x": x, "y": y, "box": box})
    return labels


def draw_figures(
    image, figures, *, class_name="Mitosis", colour=None, style=None, count=True, numbers=None, return_labels=False
):
    """``image`` (uint8 copy) with a ring around each figure and "#number score" beside it.

    Args:
        image: (H, W[, 3 or 4]) uint8, or floats in [0, 1].
        figures: ``Figure`` objects in the pixels of ``image``.
        class_name: picks the colour ("Mitosis" green, "Nucleus" cyan) and the caption's noun.
        colour: RGB that overrides the class's colour.
        style: overrides of ``marker_style(image.shape)``.
        count: write "N mitoses" in a corner (the corner with fewest figures under it).
        numbers: each figure's number, aligned with ``figures``; default the
            ``number_figures`` order of ``figures``.
        return_labels: also return, per figure, ``{"number", "text", "x", "y", "box"}``:
            its (x, y) and the label's box (x0, y0, x1, y1), in this picture's pixels.

    Returns:
        The picture as a (H, W, 3) uint8 array, or ``(picture, labels)``.
    """
    picture = Image.fromarray(_rgb(image))
    figures = list(figures)
    if numbers is None:
        order = {id(f): i + 1 for i, f in enumerate(number_figures(figures))}
        numbers = [order[id(f)] for f in figures]
    if len(numbers) != len(figures):
        raise ValueError(f"numbers must give one number per figure; got {len(numbers)} for {len(figures)} figures.")
    style = {**marker_style((picture.height, picture.width)), **(style or {})}
    labels = _draw_numbered(picture, figures, list(numbers), style, _colour(class_name, colour))
    if count:
        _caption(picture, count_text(len(figures), class_name), style["font_size"], [f.xy for f in figures])
    labels.sort(key=lambda label: label["number"])
    return (np.asarray(picture), labels) if return_labels else np.asarray(picture)


def _caption(picture, text, font_size, avoid=()):
    """``text`` white on a dark box in a corner of ``picture`` (PIL, in place); returns the box.

    The corner is the one covering fewest of the (x, y) points in ``avoid``
    (top-left on ties), so the count hides as few figures as it can.
    """
    draw, lettering = ImageDraw.Draw(picture), font(font_size)
    pad = max(3, font_size // 4)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=lettering)
    box_w, box_h = right + 2 * pad, bottom + 2 * pad
    corners = [
        (0, 0),
        (picture.width - box_w, 0),
        (0, picture.height - box_h),
        (picture.width - box_w, picture.height - box_h),
    ]

    def covered(corner):
        x0, y0 = corner
        return sum(1 for x, y in avoid if x0 <= x <= x0 + box_w and y0 <= y <= y0 + box_h)

    x0, y0 = min(corners, key=covered)
    x0, y0 = max(0, x0), max(0, y0)
    draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(0, 0, 0))
    draw.text((x0 + pad, y0 + pad), text, font=lettering, fill=(255, 255, 255))
    return [x0, y0, x0 + box_w, y0 + box_h]


def caption(image, text, *, font_size=None, avoid=()):
    """``image`` (uint8 copy) with ``text`` on a dark box in the corner covering fewest ``avoid`` (x, y) points."""
    picture = Image.fromarray(_rgb(image))
    _caption(picture, text, font_size or marker_style((picture.height, picture.width))["font_size"], avoid)
    return np.asarray(picture)


def count_text(count, class_name):
    """ "1 mitosis", "8 mitoses", "0 nuclei": the count every picture of figures carries."""
    noun = class_name if count == 1 else PLURALS.get(class_name, f"{class_name} figures")
    return f"{count} {noun.lower()}"


def overview(image, figures, max_side=OVERVIEW_MAX_SIDE, *, class_name="Mitosis", colour=None, return_labels=False):
    """``image`` shrunk so its longest side is at most ``max_side``, figures numbered at that size, count in a corner.

    Markers are drawn after shrinking, so they have the thickness a screen
    needs rather than the full-size overlay's thinned by the resampling.
    Numbers are those of the full-size ``figures`` (``number_figures``), so
    they match the overlay and the gallery. ``return_labels``: also return
    the labels as ``draw_figures`` does, in the overview's pixels.
    """
    from mitoseg_tf.detection.figures import rescale_figure

    if not isinstance(max_side, (int, np.integer)) or max_side < 16:
        raise ValueError(f"max_side must be an integer of at least 16 pixels; got {max_side!r}.")
    array = _rgb(image)
    height, width = array.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = Image.fromarray(array)
    if factor < 1.0:
        small = small.resize(size, Image.Resampling.LANCZOS)
    figures = number_figures(figures)
    rows, cols = small.height / height, small.width / width
    return draw_figures(
        np.asarray(small),
        [rescale_figure(f, rows, cols) for f in figures],
        class_name=class_name,
        colour=colour,
        numbers=range(1, len(figures) + 1),
        return_labels=return_labels,
    )


def _crop(array, centre, window):
    """A ``window`` x ``window`` crop centred on ``centre`` (row, col); outside the image is grey."""
    height, width = array.shape[:2]
    row0 = int(round(centre[0])) - window // 2
    col0 = int(round(centre[1])) - window // 2
    crop = np.empty((window, window, 3), np.uint8)
    crop[:] = OUTSIDE_IMAGE
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + window, height), min(col0 + window, width)
    if r1 > r0 and c1 > c0:
        crop[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = array[r0:r1, c0:c1]
    return crop


def gallery_label_height(font_size):
    """Height of the two caption lines under each gallery crop: "#n score", then "x X, y Y"."""
    return 2 * font_size + 10


def gallery(
    image,
    figures,
    *,
    window=64,
    columns=8,
    zoom=2,
    max_figures=GALLERY_MAX_FIGURES,
    class_name="Mitosis",
    return_labels=False,
):
    """One ``window``-px crop per figure in ``number_figures`` order, ``columns`` to a row, captioned.

    Under each crop: "#number score" (the number the overlay and overview
    write beside its ring) and the figure's centroid "x X, y Y" in the
    image's pixels. Crops are enlarged ``zoom`` times by pixel repetition (no
    invented detail), so a figure of 10 um fills a visible part of the tile.
    Beyond ``max_figures`` the highest numbers (lowest scores) are left out
    and the title says so. No figures: a small image saying "0 mitoses".
    ``return_labels``: also return, per crop, ``{"number", "text", "x", "y",
    "box"}`` with the caption's text, the figure's (x, y) in ``image``'s
    pixels and the crop's box in the gallery's pixels.
    """
    for name, value, low in (("window", window, 8), ("columns", columns, 1), ("zoom", zoom, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"gallery {name} must be an integer of at least {low}; got {value!r}.")
    array = _rgb(image)
    figures = number_figures(figures)
    if not figures:
        picture = Image.new("RGB", (220, 60), GALLERY_BACKGROUND)
        draw = ImageDraw.Draw(picture)
        draw.text((110, 30), count_text(0, class_name), font=font(20), fill=(0, 0, 0), anchor="mm")
        return (np.asarray(picture), []) if return_labels else np.asarray(picture)
    shown = figures[: max_figures or len(figures)]
    tile = window * zoom
    font_size = max(12, tile // 8)
    lettering = font(font_size)
    label_height, gap = gallery_label_height(font_size), 4
    columns = min(columns, len(shown))
    rows = -(-len(shown) // columns)
    title_height = font_size + 12
    canvas = Image.new(
        "RGB",
        (columns * (tile + gap) + gap, title_height + rows * (tile + label_height + gap) + gap),
        GALLERY_BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    title = f"{count_text(len(figures), class_name)}, best score first"
    if len(shown) < len(figures):
        title = f"the {len(shown)} best of {count_text(len(figures), class_name)}"
    draw.text((gap, 6), title, font=lettering, fill=(0, 0, 0))
    labels = []
    for index, figure in enumerate(shown):
        r, c = divmod(index, columns)
        x = gap + c * (tile + gap)
        y = title_height + r * (tile + label_height + gap)
        crop = _crop(array, figure.row_col, window).repeat(zoom, axis=0).repeat(zoom, axis=1)
        canvas.paste(Image.fromarray(crop), (x, y))
        fx, fy = figure.xy
        text = f"#{index + 1} {figure.score:.2f}\nx {fx:.0f}, y {fy:.0f}"
        draw.multiline_text(
            (x + tile / 2, y + tile + 2), text, font=lettering, fill=(0, 0, 0), anchor="ma", align="center", spacing=2
        )
        labels.append({"number": index + 1, "text": text, "x": fx, "y": fy, "box": [x, y, x + tile, y + tile]})
    return (np.asarray(canvas), labels) if return_labels else np.asarray(canvas)


def save_picture(picture, path, *, quality=JPEG_QUALITY):
    """Write ``picture`` (uint8 array) to ``path``: JPEG at ``quality`` for .jpg / .jpeg, else by the suffix (PNG).

    Chroma is kept at full resolution (no 4:2:0 subsampling): thin coloured
    rings and digits blur into the tissue otherwise, for a few percent of size.
    """
    image = Image.fromarray(_rgb(picture))
    if os.path.splitext(str(path))[1].lower() in (".jpg", ".jpeg"):
        image.save(path, format="JPEG", quality=quality, subsampling=0, optimize=True)
    else:
        image.save(path)
    return path


def draw_evaluation(image, true_positive_points, false_positive_points, missed_points, *, style=None, legend=True):
    """``image`` with true positives (green circles), false positives (blue squares) and missed
    figures (yellow diamonds) at their (row, col) points, and a legend with each count.

    True positives and false positives are predicted centres; missed points
    are the true centres no prediction matched.
    """
    picture = Image.fromarray(_rgb(image))
    style = {**marker_style((picture.height, picture.width)), **(style or {})}
    groups = {
        "true positive": _points(true_positive_points, "true_positive_points"),
        "false positive": _points(false_positive_points, "false_positive_points"),
        "missed": _points(missed_points, "missed_points"),
    }
    draw = ImageDraw.Draw(picture)
    for kind, points in groups.items():
        colour, shape = EVALUATION_STYLE[kind]
        for point in points:
            ring(draw, point, style["radius"], style["width"], colour, shape)
    if legend:
        _legend(draw, groups, style)
    return np.asarray(picture)


def _legend(draw, groups, style):
    font_size = style["font_size"]
    lettering, pad = font(font_size), max(4, font_size // 3)
    line = font_size + pad
    lines = [f"{kind} ({len(points)})" for kind, points in groups.items()]
    text_width = max(draw.textbbox((0, 0), text, font=lettering)[2] for text in lines)
    marker = font_size // 2
    draw.rectangle((0, 0, 4 * pad + 2 * marker + text_width, pad + line * len(lines)), fill=(255, 255, 255))
    for i, (kind, text) in enumerate(zip(groups, lines)):
        colour, shape = EVALUATION_STYLE[kind]
        centre = (pad + i * line + line / 2 - pad / 2, pad + marker)
        ring(draw, centre, marker - 1, max(2, style["width"] // 2), colour, shape)
        draw.text((3 * pad + 2 * marker, centre[0]), text, font=lettering, fill=(0, 0, 0), anchor="lm")
