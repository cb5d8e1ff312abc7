"""``folder``: a folder of images and a folder of same-named binary label images.

The reference paper's own layout (328 images of 1720x1280 with label images of
the same name). ``DATA_DIR/images/NAME.ext`` pairs with ``DATA_DIR/masks/NAME.ext``
(the mask folder may also be called ``labels``; extensions may differ).

The files' pixel size is not read: it is the reader option ``mpp`` (a recipe's
``data_options: {mpp: ...}``), 0.25 um/px (a 40x scan) unless given.
"""

import os
import re

from mitoseg_tf.data.formats.record import Record, check_manual_dir, reader_mpp, require_records
from mitoseg_tf.data.images import list_images

NAME = "folder"
DESCRIPTION = "a folder of images + a folder of same-named binary masks (the reference paper's layout)"
EXPECTED = "images/ and masks/ (or labels/) sub-folders with same-named files"
DEFAULT_MPP = 0.25  # unknown for a user's folder; 40x scanners are 0.23-0.26 um/px
IMAGE_DIRS = ("images", "image", "imgs")
MASK_DIRS = ("masks", "mask", "labels", "label")


def _subfolder(data_dir, names, what):
    for name in names:
        if os.path.isdir(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    raise FileNotFoundError(f"{NAME}: {data_dir} has no {what} folder; expected one of {', '.join(names)}.")


def read(data_dir: str | os.PathLike, *, mpp: float | None = None, slide_pattern: str | None = None) -> list[Record]:
    """Records of the folder layout; every image needs its mask and every mask its image.

    Args:
        data_dir: the folder (``EXPECTED`` says the layout).
        mpp: every image's pixel size; None: ``DEFAULT_MPP``.
        slide_pattern: a regex whose first group (or whole match) names the slide
            of an image from its file name, so splits keep a slide's images
            together; None: each image is its own slide.

    Returns:
        One ``Record`` per image, no pixels decoded.

    Raises:
        ValueError: an image without its mask or a mask without its image, a
            bad ``slide_pattern``, or no image at all.
    """
    mpp = reader_mpp(mpp, NAME, DEFAULT_MPP)
    check_manual_dir(data_dir, NAME, EXPECTED)
    images = list_images(_subfolder(data_dir, IMAGE_DIRS, "image"))
    masks = list_images(_subfolder(data_dir, MASK_DIRS, "mask"))
    missing = sorted(set(images) - set(masks))
    if missing:
        raise ValueError(
            f"{NAME}: {len(missing)} image(s) have no mask of the same name, e.g. {images[missing[0]]}; "
            "every image needs a mask (an all-zero mask for a tile without mitoses)."
        )
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise ValueError(f"{NAME}: {len(orphans)} mask(s) have no image of the same name, e.g. {masks[orphans[0]]}.")
    records = []
    for stem in sorted(images):
        slide = stem
        if slide_pattern:
            match = re.search(slide_pattern, stem)
            if not match:
                raise ValueError(f"{NAME}: slide_pattern {slide_pattern!r} does not match the file name {stem!r}.")
            slide = match.group(1) if match.groups() else match.group(0)
        records.append(Record(id=stem, image=images[stem], slide=slide, mpp=mpp, mask=masks[stem]))
    return require_records(records, data_dir, EXPECTED)
