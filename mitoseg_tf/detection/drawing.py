"""Pictures of detections a person can read: circled figures, a screen-sized overview, a review gallery.

NumPy and PIL only (no TensorFlow), so the predict writer, the evaluate command
and notebooks can all call these on any machine.

    >>> from mitoseg_tf.detection.drawing import draw_figures, overview, gallery, draw_evaluation
    >>> Image.fromarray(draw_figures(field, figures)).save("overlay.png")      # full size
    >>> Image.fromarray(overview(field, figures)).save("overview.png")        # longest side 1600 px
    >>> Image.fromarray(gallery(field, figures)).save("gallery.png")          # one crop per figure, best first

Marker radius, line width and lettering grow with the image's longest side: a
2084 px field is usually viewed shrunk to a screen, and fixed 1 px rings and
10 px digits vanish at that size.
"""

import math

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


def _font(size):
    return ImageFont.load_default(size=size)


def _points(points, what):
    array = np.asarray(points if points is not None else [], dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must be (row, col) points, shape (K, 2); got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds a non-finite coordinate.")
    return array


def _ring(draw, centre, radius, width, colour, shape="circle"):
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


def _label(draw, text, centre, radius, font, colour, size):
    """``text`` beside the marker at ``centre``, moved inside the image when the right edge would cut it."""
    height, width = size
    row, col = centre
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
    gap = max(2, radius // 4)
    x = col + radius + gap
    if x + right > width:
        x = col - radius - gap - right
    y = row - (top + bottom) / 2
    x = min(max(x, 0), max(width - right, 0))
    y = min(max(y, -top), max(height - bottom, 0))
    draw.text((x, y), text, font=font, fill=colour, stroke_width=2, stroke_fill=EDGE)


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


def draw_figures(image, figures, *, class_name="Mitosis", colour=None, style=None):
    """``image`` (uint8 copy) with a ring around each figure and its score beside it.

    ``figures``: ``Figure`` objects (centroid (row, col), score, bbox) in the
    pixels of ``image``. ``class_name`` picks the colour ("Mitosis" green,
    "Nucleus" cyan) unless ``colour`` (RGB) is given; ``style`` overrides
    ``marker_style(image.shape)``.
    """
    picture = Image.fromarray(_rgb(image))
    figures = list(figures)
    style = {**marker_style((picture.height, picture.width)), **(style or {})}
    draw, font, colour = ImageDraw.Draw(picture), _font(style["font_size"]), _colour(class_name, colour)
    for figure in figures:
        radius = _figure_radius(figure, style["radius"])
        _ring(draw, figure.centroid, radius, style["width"], colour)
    # Labels after every ring, so no ring is drawn over a neighbour's score.
    for figure in figures:
        radius = _figure_radius(figure, style["radius"])
        _label(draw, f"{figure.score:.2f}", figure.centroid, radius, font, colour, (picture.height, picture.width))
    return np.asarray(picture)


def _caption(picture, text, font_size):
    """``text`` on a dark box in the top-left corner of ``picture`` (a PIL image, drawn in place)."""
    draw, font = ImageDraw.Draw(picture), _font(font_size)
    pad = max(3, font_size // 4)
    left, top, right, bottom = draw.textbbox((pad, pad), text, font=font)
    draw.rectangle((0, 0, right + pad, bottom + pad), fill=(0, 0, 0))
    draw.text((pad, pad), text, font=font, fill=(255, 255, 255))


def _count_text(count, class_name):
    noun = class_name if count == 1 else PLURALS.get(class_name, f"{class_name} figures")
    return f"{count} {noun.lower()}"


def overview(image, figures, max_side=1600, *, class_name="Mitosis", colour=None):
    """``image`` shrunk so its longest side is at most ``max_side``, figures drawn at that size, count in a corner.

    Markers are drawn after shrinking, so they have the thickness a screen
    needs rather than the full-size overlay's thinned by the resampling.
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
    figures = list(figures)
    rows, cols = small.height / height, small.width / width
    picture = Image.fromarray(
        draw_figures(
            np.asarray(small),
            [rescale_figure(f, rows, cols) for f in figures],
            class_name=class_name,
            colour=colour,
        )
    )
    _caption(picture, _count_text(len(figures), class_name), marker_style((picture.height, picture.width))["font_size"])
    return np.asarray(picture)


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


def gallery(image, figures, *, window=64, columns=8, zoom=2, max_figures=GALLERY_MAX_FIGURES):
    """One ``window``-px crop per figure, best score first, ``columns`` to a row, its rank and score beneath.

    Crops are enlarged ``zoom`` times by pixel repetition (no invented detail),
    so a figure of 10 um fills a visible part of the tile. Beyond
    ``max_figures`` the lowest scores are left out and the title says so. No
    figures: a small image saying "no figures".
    """
    for name, value, low in (("window", window, 8), ("columns", columns, 1), ("zoom", zoom, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"gallery {name} must be an integer of at least {low}; got {value!r}.")
    array = _rgb(image)
    figures = sorted(figures, key=lambda f: -f.score)
    if not figures:
        picture = Image.new("RGB", (220, 60), GALLERY_BACKGROUND)
        draw = ImageDraw.Draw(picture)
        draw.text((110, 30), "no figures", font=_font(20), fill=(0, 0, 0), anchor="mm")
        return np.asarray(picture)
    shown = figures[: max_figures or len(figures)]
    tile = window * zoom
    font_size = max(12, tile // 8)
    font = _font(font_size)
    label_height, gap = font_size + 8, 4
    columns = min(columns, len(shown))
    rows = -(-len(shown) // columns)
    title_height = font_size + 12
    canvas = Image.new(
        "RGB",
        (columns * (tile + gap) + gap, title_height + rows * (tile + label_height + gap) + gap),
        GALLERY_BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    title = f"{len(figures)} figures, best score first"
    if len(shown) < len(figures):
        title = f"the {len(shown)} best of {len(figures)} figures"
    draw.text((gap, 6), title, font=font, fill=(0, 0, 0))
    for rank, figure in enumerate(shown):
        r, c = divmod(rank, columns)
        x = gap + c * (tile + gap)
        y = title_height + r * (tile + label_height + gap)
        crop = _crop(array, figure.centroid, window).repeat(zoom, axis=0).repeat(zoom, axis=1)
        canvas.paste(Image.fromarray(crop), (x, y))
        draw.text(
            (x + tile / 2, y + tile + 2), f"#{rank + 1}  {figure.score:.2f}", font=font, fill=(0, 0, 0), anchor="ma"
        )
    return np.asarray(canvas)


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
            _ring(draw, point, style["radius"], style["width"], colour, shape)
    if legend:
        _legend(draw, groups, style)
    return np.asarray(picture)


def _legend(draw, groups, style):
    font_size = style["font_size"]
    font, pad = _font(font_size), max(4, font_size // 3)
    line = font_size + pad
    lines = [f"{kind} ({len(points)})" for kind, points in groups.items()]
    text_width = max(draw.textbbox((0, 0), text, font=font)[2] for text in lines)
    marker = font_size // 2
    draw.rectangle((0, 0, 4 * pad + 2 * marker + text_width, pad + line * len(lines)), fill=(255, 255, 255))
    for i, (kind, text) in enumerate(zip(groups, lines)):
        colour, shape = EVALUATION_STYLE[kind]
        centre = (pad + i * line + line / 2 - pad / 2, pad + marker)
        _ring(draw, centre, marker - 1, max(2, style["width"] // 2), colour, shape)
        draw.text((3 * pad + 2 * marker, centre[0]), text, font=font, fill=(0, 0, 0), anchor="lm")
