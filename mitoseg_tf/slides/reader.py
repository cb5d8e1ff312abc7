"""One reader for whole-slide images and plain images: ``open_slide(path, mpp=None)``.

Backends, tried in order:

1. OpenSlide (``openslide-python`` with the ``openslide-bin`` wheel): SVS,
   NDPI, MRXS, generic tiled TIFF and the other formats it knows;
2. tiffslide, when OpenSlide is not importable or cannot open the file
   (pure Python over tifffile: OME-TIFF and TIFFs OpenSlide refuses);
3. plain images (PNG, JPEG, BMP, untiled TIFF) held in memory as one level;
   their pixel size is ``mpp``, else what the file states as ``mitoseg predict``
   reads it (``data.pixel_size``: TIFF tags, PNG pHYs, ...), else an error.

Coordinates follow OpenSlide: ``read_region(x, y, w, h, level)`` takes the
top-left corner in level-0 pixels and the size in pixels of ``level``;
whatever lies outside the slide reads as white (background), not black, so
tissue detection and the network see the glass they would see on a scanner.
"""

import math
import os

import cv2
import numpy as np

from mitoseg_tf.data.images import read_image
from mitoseg_tf.data.pixel_size import APERIO_MPP, image_pixel_size
from mitoseg_tf.inference.resample import check_mpp
from mitoseg_tf.slides.integrity import ADVICE, check_complete, find_bad_tile

PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DICOM_SUFFIX = ".dcm"  # one file of a series: the folder holding them is the slide (dicom_series)
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm")
ACCEPTED = (
    "whole-slide images OpenSlide or tiffslide read (SVS, NDPI, MRXS, SCN, BIF, DICOM, tiled or OME TIFF) and plain "
    "RGB images (PNG, JPEG, BMP, TIFF; give their mpp)"
)
# Strip/tile sizes for reads that would otherwise hold a whole level in memory.
READ_CHUNK = 4096


class Slide:
    """A slide's pyramid, pixel size and regions, whatever the file behind it."""

    backend = None

    def __init__(self, path, mpp, dimensions, level_dimensions):
        self.path = path
        self.mpp = mpp
        self.dimensions = tuple(int(v) for v in dimensions)  # (width, height) of level 0
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in level_dimensions)
        self.level_downsamples = tuple(
            0.5 * (self.dimensions[0] / w + self.dimensions[1] / h) for w, h in self.level_dimensions
        )

    @property
    def level_count(self):
        return len(self.level_dimensions)

    @property
    def name(self):
        return os.path.basename(self.path.rstrip(os.sep))

    def level_mpp(self, level):
        return self.mpp * self.level_downsamples[level]

    def level_for_downsample(self, downsample, tolerance=0.01):
        """The coarsest level whose downsample is not above ``downsample`` (within ``tolerance``)."""
        ok = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * (1 + tolerance)]
        return max(ok, key=lambda i: self.level_downsamples[i]) if ok else 0

    def read_region(self, x, y, w, h, level=0):
        """uint8 (h, w, 3) RGB of ``level``, top-left (``x``, ``y``) in level-0 pixels; outside the slide is white."""
        w, h, level = int(w), int(h), int(level)
        if w <= 0 or h <= 0:
            raise ValueError(f"{self.path}: a region needs a positive size; got {w}x{h}.")
        if not 0 <= level < self.level_count:
            raise ValueError(
                f"{self.path}: level {level} does not exist; the slide has levels 0-{self.level_count - 1}."
            )
        ds = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        # Clip in level pixels so every backend only ever reads inside the image.
        lx, ly = int(math.floor(x / ds)), int(math.floor(y / ds))
        cx0, cy0 = max(lx, 0), max(ly, 0)
        cx1, cy1 = min(lx + w, lw), min(ly + h, lh)
        out = np.full((h, w, 3), 255, np.uint8)
        if cx1 > cx0 and cy1 > cy0:
            try:
                part = self._read(int(round(cx0 * ds)), int(round(cy0 * ds)), cx1 - cx0, cy1 - cy0, level)
            except MemoryError:
                raise
            except Exception as err:  # OpenSlide, tifffile, zarr and each codec raise their own types on damage
                raise self._damage(err, level, (cx0, cy0, cx1, cy1)) from err
            out[cy0 - ly : cy1 - ly, cx0 - lx : cx1 - lx] = part
        return out

    def _damage(self, err, level, box):
        """The error for a region (``box`` in ``level`` pixels) that does not decode: file, place, cause, remedy."""
        ds = self.level_downsamples[level]
        x0, y0, x1, y1 = (int(round(v * ds)) for v in box)
        where = find_bad_tile(self.path, self.level_dimensions[level], box)
        where = f"{where}, in " if where else ""
        return ValueError(
            f"{self.path}: the file is corrupt or truncated: {where}level {level}, x {x0}-{x1}, y {y0}-{y1} "
            f"(level-0 pixels) does not decode ({type(err).__name__}: {err}); {ADVICE}."
        )

    def read_downsampled(self, downsample):
        """The whole slide shrunk by ``downsample`` (level-0 pixels per output pixel), read in bounded pieces.

        Read from the coarsest level not coarser than asked and shrunk with
        area averaging, block by block, so a slide without a low level never
        has a whole level in memory.
        """
        if not downsample >= 1:
            raise ValueError(f"downsample must be >= 1; got {downsample!r}.")
        level = self.level_for_downsample(downsample)
        factor = downsample / self.level_downsamples[level]  # level pixels per output pixel
        out_w = max(1, int(math.ceil(self.dimensions[0] / downsample)))
        out_h = max(1, int(math.ceil(self.dimensions[1] / downsample)))
        out = np.empty((out_h, out_w, 3), np.uint8)
        block = max(1, int(READ_CHUNK // factor))
        ds = self.level_downsamples[level]
        for r0 in range(0, out_h, block):
            r1 = min(out_h, r0 + block)
            for c0 in range(0, out_w, block):
                c1 = min(out_w, c0 + block)
                lx0, ly0 = int(round(c0 * factor)), int(round(r0 * factor))
                lx1, ly1 = max(lx0 + 1, int(round(c1 * factor))), max(ly0 + 1, int(round(r1 * factor)))
                part = self.read_region(lx0 * ds, ly0 * ds, lx1 - lx0, ly1 - ly0, level)
                out[r0:r1, c0:c1] = cv2.resize(part, (c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA)
        return out

    def thumbnail(self, max_size=1024):
        """uint8 RGB of the whole slide, its longer side ``max_size`` pixels (or less for a small slide)."""
        return self.read_downsampled(max(1.0, max(self.dimensions) / float(max_size)))

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        w, h = self.dimensions
        return f"{type(self).__name__}({self.name!r}, {w}x{h} px at {self.mpp:g} um/px, {self.level_count} level(s))"

    def _read(self, x, y, w, h, level):
        raise NotImplementedError


def _rgb(region):
    """RGBA (transparent where nothing was scanned) -> RGB composited on white."""
    array = np.asarray(region)
    if array.ndim == 3 and array.shape[-1] == 4:
        if array[..., 3].min() == 255:  # the usual case inside the scan: no blending needed
            return np.ascontiguousarray(array[..., :3])
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        rgb = array[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.round(rgb).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1).astype(np.uint8)
    return np.ascontiguousarray(array[..., :3]).astype(np.uint8)


def _property_mpp(properties, keys):
    for key in keys:
        value = properties.get(key)
        try:
            mpp = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(mpp) and mpp > 0:
            return mpp
    for key in ("aperio.MPP", "tiff.ImageDescription"):
        match = APERIO_MPP.search(str(properties.get(key, "")))
        if match and float(match.group(1)) > 0:
            return float(match.group(1))
    return None


class _HandleSlide(Slide):
    """A slide behind an OpenSlide or tiffslide handle (same read_region interface)."""

    def __init__(self, path, handle, mpp, backend):
        self._handle = handle
        self.backend = backend
        super().__init__(path, mpp, handle.dimensions, handle.level_dimensions)

    def _read(self, x, y, w, h, level):
        return _rgb(self._handle.read_region((x, y), level, (w, h)))

    def close(self):
        self._handle.close()


class _ImageSlide(Slide):
    backend = "image"

    def __init__(self, path, image, mpp):
        self._image = image
        super().__init__(path, mpp, (image.shape[1], image.shape[0]), [(image.shape[1], image.shape[0])])

    def _read(self, x, y, w, h, level):
        return self._image[y : y + h, x : x + w]


def _open_openslide(path):
    """(handle, metadata mpp) or None when OpenSlide is absent or does not know the file."""
    try:
        # Optional native library: without it tiffslide and plain images still work.
        import openslide
    except (ImportError, OSError):
        return None
    try:
        handle = openslide.OpenSlide(path)
    except (openslide.OpenSlideError, OSError, ValueError):
        return None
    return handle, _property_mpp(handle.properties, ("openslide.mpp-x",))


def _open_tiffslide(path):
    try:
        # Optional: only needed for files OpenSlide cannot open.
        import tiffslide
    except ImportError:
        return None
    try:
        handle = tiffslide.TiffSlide(path)
        handle.level_dimensions  # noqa: B018 - forces the pyramid to be parsed now, not at the first read
    except Exception:  # tifffile/zarr raise many unrelated types on a file that is not theirs
        return None
    return handle, _property_mpp(handle.properties, ("tiffslide.mpp-x", "openslide.mpp-x"))


def _resolve_mpp(path, given, metadata, backend):
    if given is not None:
        return check_mpp(given, f"mpp given for {path}")
    if metadata is None:
        raise ValueError(
            f"{path}: the {backend} backend found no pixel size in the file's metadata (openslide.mpp-x, "
            "tiffslide.mpp-x or an Aperio 'MPP = ' description); give it: mpp=... / --mpp MICRONS_PER_PIXEL "
            "(0.25 at 40x, 0.5 at 20x)."
        )
    return check_mpp(metadata, f"{path}: the pixel size in its metadata ({backend})")


def _handle_slide(path, opened, mpp, backend):
    handle, metadata = opened
    try:
        return _HandleSlide(path, handle, _resolve_mpp(path, mpp, metadata, backend), backend)
    except ValueError:
        handle.close()
        raise


def dicom_series(path):
    """The ``.dcm`` files of a folder, sorted ([] for a file or a folder without any).

    A DICOM whole-slide image is a series of files in one folder (a file per
    pyramid level, label and overview): the folder is the slide.
    """
    if not os.path.isdir(path):
        return []
    files = (os.path.join(path, n) for n in os.listdir(path) if os.path.splitext(n)[1].lower() == DICOM_SUFFIX)
    return sorted(f for f in files if os.path.isfile(f))


def _open_dicom_series(folder, files, mpp):
    # OpenSlide opens a series from one of its files and finds the others beside it; a label or overview
    # file it may refuse as a start, so each is tried in turn.
    for file in files:
        opened = _open_openslide(file)
        if opened is not None:
            return _handle_slide(folder, opened, mpp, "openslide")
    raise ValueError(
        f"{folder}: a folder of {len(files)} DICOM file(s) that OpenSlide cannot open as a whole-slide "
        f"image series (OpenSlide 4 or later reads DICOM WSI); accepted: {ACCEPTED}."
    )


def open_slide(path, mpp=None):
    """The slide at ``path`` as a ``Slide``; ``mpp`` (microns per level-0 pixel) overrides the metadata's.

    ``path`` is a slide or image file, or a DICOM series folder (``dicom_series``;
    the slide is named after the folder). Raises FileNotFoundError when there
    is no such file, ValueError naming the file when no backend can read it
    or when its pixel size is unknown.
    """
    path = os.fspath(path)
    series = dicom_series(path)
    if series:
        return _open_dicom_series(path, series, mpp)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such slide file (nor a folder of DICOM files).")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in PLAIN_SUFFIXES:
        check_complete(path)
        for backend, opener in (("openslide", _open_openslide), ("tiffslide", _open_tiffslide)):
            opened = opener(path)
            if opened is not None:
                return _handle_slide(path, opened, mpp, backend)
    try:
        image = read_image(path)
    except ValueError as err:
        raise ValueError(f"{path}: not a readable slide or image ({err}); accepted: {ACCEPTED}.") from None
    return _ImageSlide(path, image, image_pixel_size(path, mpp, given_by="mpp= / --mpp").mpp)


def is_slide_file(name):
    """Whether a folder entry looks like a slide of its own (by its suffix; a DICOM file is part of a series)."""
    suffix = os.path.splitext(name)[1].lower()
    return suffix != DICOM_SUFFIX and suffix in SLIDE_SUFFIXES + PLAIN_SUFFIXES
