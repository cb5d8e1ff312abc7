"""Point and box labels to masks, with sizes in microns.

Most public mitosis sets give only figure centres (MITOS-ATYPIA-14, TUPAC16,
AMi-Br) or fixed 50-pixel boxes around them (MIDOG). A segmentation network
needs a mask, so each centre becomes a disk of a physical radius; scanners
differ in pixel size (0.23-0.26 um/px at 40x), so the radius is given in
microns and converted with the image's microns per pixel.

``refine=True`` keeps, inside each disk, only the hematoxylin-dense pixels:
mitotic chromatin is the darkest hematoxylin in the tile, so thresholding the
H channel of a colour deconvolution (Ruifrok & Johnston 2001, via
``skimage.color.rgb2hed``) within the disk traces the figure instead of a
circle. The threshold is Otsu's within the disk (skimage), and the result
always keeps the pixel at the centre, so no labelled figure disappears.
"""

import numpy as np

# A mitotic figure's chromatin spans roughly 5-10 um; a 4 um radius disk covers
# a typical figure at 0.25 um/px (32 px across), the size most point-label papers use.
DEFAULT_RADIUS_UM = 4.0


def check_points(points, shape, where="points"):
    """``points`` as float32 (K, 2) (row, col); ValueError when one lies outside an image of ``shape``."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2) if len(points) else np.zeros((0, 2), np.float32)
    if not np.isfinite(pts).all():
        bad = pts[~np.isfinite(pts).all(axis=1)][0]
        raise ValueError(
            f"{where}: point (row {bad[0]:g}, col {bad[1]:g}) is not finite; every coordinate must be a number."
        )
    if len(pts):
        outside = (pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] > shape[0] - 1) | (pts[:, 1] > shape[1] - 1)
        if outside.any():
            bad = pts[outside][0]
            raise ValueError(
                f"{where}: point (row {bad[0]:g}, col {bad[1]:g}) lies outside the {shape[0]}x{shape[1]} image "
                f"({int(outside.sum())} of {len(pts)} points outside); check the x/y order and the image."
            )
    return pts


def boxes_to_points(boxes):
    """Centres (row, col) of boxes given as [x1, y1, x2, y2] (MIDOG/COCO-corner order)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], axis=1)


def _hematoxylin(image):
    from skimage.color import rgb2hed

    return rgb2hed(image)[..., 0]


def points_to_mask(points, shape, *, mpp, radius_um=DEFAULT_RADIUS_UM, image=None, refine=False):
    """Binary mask (uint8 0/1, ``shape``) with a disk of ``radius_um`` microns around each point.

    Args:
        points: (K, 2) centres as (row, col) pixels.
        shape: (height, width) of the image.
        mpp: microns per pixel of the image.
        radius_um: disk radius in microns.
        image: uint8 RGB (H, W, 3); required when ``refine``.
        refine: keep only the hematoxylin-dense pixels inside each disk (see module doc).
    """
    if mpp is None or mpp <= 0:
        raise ValueError(f"points_to_mask: mpp (microns per pixel) must be positive; got {mpp!r}.")
    if radius_um <= 0:
        raise ValueError(f"points_to_mask: radius_um must be positive; got {radius_um!r}.")
    if refine and (image is None or tuple(image.shape[:2]) != tuple(shape)):
        raise ValueError("points_to_mask: refine=True needs the RGB image of the same height and width.")
    pts = check_points(points, shape)
    mask = np.zeros(shape, np.uint8)
    radius = radius_um / mpp
    reach = int(np.ceil(radius))
    hema = None
    for row, col in pts:
        r0, r1 = max(int(np.floor(row)) - reach, 0), min(int(np.ceil(row)) + reach + 1, shape[0])
        c0, c1 = max(int(np.floor(col)) - reach, 0), min(int(np.ceil(col)) + reach + 1, shape[1])
        rr, cc = np.mgrid[r0:r1, c0:c1]
        disk = (rr - row) ** 2 + (cc - col) ** 2 <= radius**2
        if refine:
            if hema is None:
                hema = _hematoxylin(image)
            disk = _refine_disk(disk, hema[r0:r1, c0:c1], int(round(row)) - r0, int(round(col)) - c0)
        mask[r0:r1, c0:c1] |= disk.astype(np.uint8)
    return mask


def _refine_disk(disk, hema, centre_row, centre_col):
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    values = hema[disk]
    if values.size < 2 or values.min() == values.max():
        return disk
    dense = disk & (hema >= threshold_otsu(values))
    # Keep the dense blob that holds (or is nearest to) the centre: a neighbouring
    # nucleus caught at the disk's rim is not part of this figure.
    labels, count = ndimage.label(dense)
    if count == 0:
        return disk
    centre_row = min(max(centre_row, 0), disk.shape[0] - 1)
    centre_col = min(max(centre_col, 0), disk.shape[1] - 1)
    keep = labels[centre_row, centre_col]
    if keep == 0:
        rows, cols = np.nonzero(labels)
        nearest = np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2)
        keep = labels[rows[nearest], cols[nearest]]
    blob = labels == keep
    blob[centre_row, centre_col] = disk[centre_row, centre_col]
    return ndimage.binary_fill_holes(blob)
