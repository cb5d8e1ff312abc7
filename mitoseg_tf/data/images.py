"""Reading H&E images and label images from disk, with one clear error per bad file.

Policy (documented in datasets/README.md and docs/input_rules.md):
- images must be 8-bit RGB; RGBA is accepted only when fully opaque (the alpha
  channel is dropped), greyscale, 16-bit (per channel too: Pillow would keep
  the high byte), float or transparent images are refused: converting them
  silently would change what the network sees;
- one image per file: animated images and multi-page TIFFs are refused (a
  pyramidal slide goes through ``mitoseg slide``), as are images over
  ``Image.MAX_IMAGE_PIXELS``;
- an EXIF orientation is applied, so the pixels are those every viewer shows.
- label images may be 0/1 or 0/255 greyscale, RGB with grey values (R = G = B),
  or grey + alpha (MoNuSeg's 2-channel PNGs, where the grey channel is the label);
  any other value is refused, naming the values found.
"""

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# MIDOG's 7000 x 5000 frames trip Pillow's decompression-bomb guard (89 Mpx); our
# own files are trusted, so allow up to 400 Mpx and keep the guard above that.
Image.MAX_IMAGE_PIXELS = 400_000_000
EXIF_ORIENTATION = 0x0112  # 1: as stored; 2-8: mirrored and/or turned, which viewers undo


def _open(path):
    """The decoded image at ``path``, upright (EXIF orientation applied); ValueError naming the file otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file.")
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{path}: {err} An image this large goes through `mitoseg slide`, which reads it tile by tile."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(_undecodable(path, err)) from None
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format != "MPO":  # MPO: a camera JPEG whose later frames are previews
        raise ValueError(
            f"{path}: {img.format} file of {frames} frames (an animated image or a multi-page TIFF); "
            "give one image per file, or use `mitoseg slide` for a pyramidal slide."
        )
    if _sixteen_bit_channels(img):
        raise ValueError(
            f"{path}: 16 bits per channel; H&E images must be 8-bit RGB. Convert it first, scaling its "
            "real range (e.g. 0-4095 for 12-bit data) to 0-255."
        )
    try:
        img.load()  # decode now: a truncated file fails here, not later in the pipeline
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: cannot decode the image ({err}); the file is corrupt or truncated.") from None
    if _orientation(img) not in (None, 1):
        img = ImageOps.exif_transpose(img)  # as every viewer shows it
    return img


def _undecodable(path, err):
    """Why Pillow cannot open ``path``: a TIFF it does not read (float, many channels) is named as such, not as corrupt."""
    if path.lower().endswith((".tif", ".tiff")):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return (
                    f"{path}: a {page.dtype} TIFF of shape {page.shape}; H&E images must be 8-bit RGB. Convert it "
                    "first (a float image: scale it to 0-255 and save as 8-bit)."
                )
        except Exception:  # noqa: BLE001 - not a TIFF tifffile reads either: corrupt, as below
            pass
    return f"{path}: cannot decode the image ({err}); the file is corrupt or truncated."


def _sixteen_bit_channels(img):
    """Whether the file stores 16 bits per channel that Pillow would silently cut to 8 (RGB;16 TIFF and PNG)."""
    for tile in img.tile:
        args = tile[3]
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode and img.mode in ("RGB", "RGBA"):
            return True
    return False


def _orientation(img):
    try:
        return img.getexif().get(EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - unreadable EXIF: no orientation to apply
        return None


def _sixteen_bit(img):
    return img.mode in ("I;16", "I;16B", "I;16L", "I", "F") or img.mode.startswith("I;16")


def read_image(path):
    """The image at ``path`` as uint8 (H, W, 3), upright; ValueError naming the file when it is not 8-bit RGB."""
    img = _open(path)
    if _sixteen_bit(img):
        raise ValueError(
            f"{path}: {img.mode} image (16-bit or float); H&E images must be 8-bit RGB. "
            "Convert it first, e.g. scale to 0-255 and save as 8-bit PNG."
        )
    if img.mode in ("L", "1", "LA"):
        raise ValueError(f"{path}: greyscale image (mode {img.mode}); H&E images must be RGB.")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        rgba = np.asarray(img)
        if rgba[..., 3].min() < 255:
            raise ValueError(
                f"{path}: RGBA image with transparent pixels; H&E images must be RGB "
                "(fully opaque RGBA is accepted and its alpha dropped)."
            )
        return np.ascontiguousarray(rgba[..., :3])
    if img.mode == "CMYK" or img.mode == "YCbCr":
        img = img.convert("RGB")
    if img.mode != "RGB":
        raise ValueError(f"{path}: unsupported image mode {img.mode}; H&E images must be 8-bit RGB.")
    return np.asarray(img)


def read_label_image(path, shape=None):
    """A binary label image as uint8 (H, W) of 0/1; ``shape`` (H, W) is checked when given."""
    img = _open(path)
    array = np.asarray(img.convert("L") if img.mode == "P" else img)
    if img.mode == "LA":
        array = array[..., 0]  # grey + alpha: the grey channel holds the label
    elif img.mode == "RGBA":
        array = array[..., :3]
    if array.ndim == 3:
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise ValueError(
                f"{path}: colour label image (R, G, B differ); binary masks must be grey "
                "(0/1 or 0/255, as grey, RGB grey or grey + alpha)."
            )
        array = array[..., 0]
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"{path}: mask is {array.shape[0]}x{array.shape[1]} (HxW) but its image is {shape[0]}x{shape[1]}."
        )
    values = np.unique(array)
    if set(values.tolist()) <= {0, 1}:
        return array.astype(np.uint8)
    if set(values.tolist()) <= {0, 255}:
        return (array == 255).astype(np.uint8)
    raise ValueError(
        f"{path}: mask is not binary: values {values[:8].tolist()}{' ...' if len(values) > 8 else ''}; "
        "accepted: 0/1 or 0/255."
    )


def image_size(path):
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            turned = _orientation(img) in (5, 6, 7, 8)  # read_image turns these a quarter
            return (img.size[0], img.size[1]) if turned else (img.size[1], img.size[0])
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: cannot read the image header ({err}).") from None


def list_images(folder):
    """``{stem: path}`` of the images directly in ``folder``; two files with one stem is an error."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder.")
    found = {}
    for name in sorted(os.listdir(folder)):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if stem in found:
            raise ValueError(
                f"{folder}: two images named {stem!r} ({os.path.basename(found[stem])} and {name}); "
                "pairing by name would be ambiguous."
            )
        found[stem] = os.path.join(folder, name)
    return found
