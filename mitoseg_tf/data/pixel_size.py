"""The pixel size an image file states, and the one used for it: given, read from the file, or a clear error.

Read from (the first that the file holds):

- TIFF: an Aperio ``MPP = `` in the ImageDescription (what OpenSlide reports
  as ``aperio.MPP``), an OME-XML ``PhysicalSizeX``, else the XResolution /
  YResolution tags with their ResolutionUnit (inch or centimetre; tifffile's
  millimetre and micrometre too). Tags without a unit ("none") state a shape,
  not a size, and are refused.
- PNG: the pHYs chunk when its unit is the metre (a unitless pHYs is an aspect ratio).
- JPEG: the JFIF density when its unit is the inch or the centimetre.

Nothing else is read: BMP's pixels-per-metre field is nearly always 0 or a
screen's, and ``mitoseg predict`` reads no DICOM (whole-slide DICOM goes
through ``mitoseg slide``, whose OpenSlide backend reads its pixel spacing).
A stated value must pass the one rule (``inference.resample.check_mpp``):
the 72 or 300 dpi that editors write is a print resolution (353 or 85 um/px),
not a scan's, and is refused like any other implausible value.

A given pixel size (``--mpp``, ``mpp=``) wins over the file's; the file's is
still read, so a clear disagreement can be reported.
"""

import dataclasses
import re
import xml.etree.ElementTree as ET

from PIL import Image, UnidentifiedImageError

from mitoseg_tf.inference.resample import check_mpp, same_resolution

TYPICAL = "0.25 at 40x, 0.5 at 20x"
# Aperio writes "MPP = 0.2520" into the ImageDescription; some converters copy it verbatim.
APERIO_MPP = re.compile(r"\bMPP\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_TIFF_SUFFIXES = (".tif", ".tiff")
# Microns in one unit: TIFF ResolutionUnit codes (2, 3 standard; 4, 5 tifffile's), OME-XML unit names.
_TIFF_UNITS = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}  # inch, centimetre, millimetre, micrometre
_OME_UNITS = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


class UnreadableImage(ValueError):
    """Neither Pillow nor tifffile opens the file: it states nothing, and reading its pixels will say why."""


@dataclasses.dataclass(frozen=True)
class PixelSize:
    """Microns per pixel of one image and where that number comes from (``"--mpp"``, ``"TIFF tags"``, ...)."""

    mpp: float
    source: str
    note: str = ""  # e.g. the file's own, different statement when a given value overrides it

    @property
    def origin(self):
        """Where the value comes from, with the note: what counts.csv's ``mpp_source`` says."""
        return f"{self.source}; {self.note}" if self.note else self.source

    def describe(self):
        """``"0.25 um/px (TIFF tags)"``."""
        return f"{self.mpp:g} um/px ({self.origin})"


def _checked(path, value, source):
    value = float(f"{value:.9g}")  # 25400 / (4e6 px/m as dpi) is 0.25, not 0.25000000000000006
    return PixelSize(check_mpp(value, f"{path} ({source})"), source)


def _tiff_pixel_size(path):
    import tifffile  # only TIFF files need it

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            description = page.description or ""
            ome = tif.ome_metadata if tif.is_ome else None
            tags = {
                name: page.tags[name].value
                for name in ("XResolution", "YResolution", "ResolutionUnit")
                if name in page.tags
            }
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return _pil_pixel_size(path)  # Pillow may still read it, or say it is no image
    aperio = APERIO_MPP.search(description)
    if aperio:
        return _checked(path, float(aperio.group(1)), "Aperio description")
    if ome:
        stated = _ome_pixel_size(ome)
        if stated is not None:
            return _checked(path, stated, "OME-XML")
    if "XResolution" not in tags:
        return None
    unit = int(tags.get("ResolutionUnit", 2))  # the TIFF specification's default unit is the inch
    if unit not in _TIFF_UNITS:
        raise ValueError(
            f"{path}: its TIFF resolution tags have no unit (ResolutionUnit {unit}, 'none'), so they "
            "state no pixel size."
        )
    microns = _TIFF_UNITS[unit]
    sizes = [
        microns * den / num if num > 0 else float("inf")
        for num, den in (tags[k] for k in ("XResolution", "YResolution") if k in tags)
    ]
    if not same_resolution(sizes[0], sizes[-1]):
        raise ValueError(f"{path}: its TIFF tags state pixels of {sizes[0]:.4g} x {sizes[-1]:.4g} um, not square.")
    return _checked(path, sizes[0], "TIFF tags")


def _ome_pixel_size(xml):
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Pixels" and element.get("PhysicalSizeX"):
            unit = _OME_UNITS.get(element.get("PhysicalSizeXUnit", "µm"))
            try:
                return float(element.get("PhysicalSizeX")) * unit if unit else None
            except ValueError:
                return None
    return None


def _pil_pixel_size(path):
    try:
        with Image.open(path) as img:
            kind, info = img.format, dict(img.info)
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnreadableImage(path) from None
    if kind == "PNG":
        if "dpi" in info:  # Pillow gives a pHYs in pixels per metre as dots per inch
            return _checked(path, 25400.0 / float(info["dpi"][0]), "PNG pHYs")
        if "aspect" in info and tuple(info["aspect"]) != (1, 1):
            raise ValueError(f"{path}: its PNG pHYs chunk has no unit, so it states no pixel size.")
    if kind == "JPEG" and info.get("jfif_unit") in (1, 2) and "dpi" in info:  # Pillow converts per-cm to dpi
        return _checked(path, 25400.0 / float(info["dpi"][0]), "JPEG JFIF density")
    return None


def stated_pixel_size(path):
    """The ``PixelSize`` the image file at ``path`` states, or None when it states none.

    ValueError naming the file when it states one that cannot be used: tags
    without a unit, non-square pixels, or a value outside the one rule's range;
    ``UnreadableImage`` (a ValueError) when it is no image Pillow or tifffile opens.
    """
    path = str(path)
    if path.lower().endswith(_TIFF_SUFFIXES):
        return _tiff_pixel_size(path)
    return _pil_pixel_size(path)


def _resolve(path, mpp, given_by):
    """``(PixelSize, None)``, or ``(None, why there is none)`` when nothing is given and the file states none."""
    try:
        stated, problem = stated_pixel_size(path), None
    except UnreadableImage:
        if mpp is None:
            return None, None  # reading the pixels says what is wrong with the file, for that file alone
        stated, problem = None, None
    except ValueError as err:
        stated, problem = None, str(err).rstrip(".")
    if mpp is not None:
        value = check_mpp(mpp, given_by)
        disagree = stated is not None and not same_resolution(stated.mpp, value)
        return PixelSize(value, given_by, f"the file states {stated.describe()}" if disagree else ""), None
    return stated, None if stated else (problem or f"{path} states no pixel size")


def _unknown(reasons, total, given_by):
    listed = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
    what = "the image" if total == 1 else f"{len(reasons)} of {total} images"
    return ValueError(
        f"the pixel size of {what} is unknown ({listed}); give it with {given_by} MICRONS_PER_PIXEL ({TYPICAL})."
    )


def image_pixel_size(path, mpp=None, *, given_by="mpp"):
    """The ``PixelSize`` to use for the image at ``path``: ``mpp`` when given (named ``given_by``), else the file's.

    A given ``mpp`` wins; when the file states a different one (beyond the 1 %
    under which two pixel sizes are the same) the result's ``note`` says so.
    ValueError naming the file and ``given_by`` when there is neither; None
    when the file is no image (reading it says why).
    """
    return image_pixel_sizes([path], mpp, given_by=given_by)[path]


def image_pixel_sizes(paths, mpp=None, *, given_by="mpp"):
    """``{path: PixelSize or None}`` of every image (``image_pixel_size``); one ValueError for all that have none.

    An unreadable file maps to None: it is not the pixel size's fault, and
    reading it fails for that file alone.
    """
    found, reasons = {}, []
    for path in paths:
        size, reason = _resolve(path, mpp, given_by)
        if reason is None:
            found[path] = size
        else:
            reasons.append(reason)
    if reasons:
        raise _unknown(reasons, len(found) + len(reasons), given_by)
    return found
