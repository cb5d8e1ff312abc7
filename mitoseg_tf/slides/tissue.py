"""Tissue mask of a slide at low resolution: stained tissue kept, glass, pen marks and specks dropped.

H&E tissue is saturated (pink eosin, purple haematoxylin) while glass is
white and grey; Otsu's threshold on HSV saturation separates the two, clamped
so a slide that is all glass (Otsu then splits noise) or all tissue (Otsu
then splits pale from dark tissue) is not cut in the wrong place. Pen marks
are saturated too, so they are removed by colour first: blue (blue well above
red, which haematoxylin's purple is not), green (green on top, which H&E
never is) and black (every channel dark). Closing fills the gaps between
cells, opening and a minimum area drop dust.
"""

import dataclasses
import math

import cv2
import numpy as np

from mitoseg_tf.defaults import DEFAULT_TISSUE_MPP

# Saturation (0-255) bounds on Otsu's threshold; pale H&E stays above 20, glass and dust below.
MIN_SATURATION, MAX_SATURATION = 20, 60
WHITE_LEVEL = 220  # darkest channel above this: glass
BLACK_LEVEL = 45  # brightest channel below this: black pen or folds of dirt
PEN_MARGIN = 30  # channel difference that marks blue / green ink
MIN_TISSUE_AREA_UM2 = 20_000.0  # smaller islands (0.02 mm^2, 140 um across) are dust or debris


@dataclasses.dataclass(frozen=True)
class TissueMask:
    """Boolean mask; pixel (r, c) covers level-0 pixels [c * downsample, (c + 1) * downsample) across."""

    mask: np.ndarray
    downsample: float  # level-0 pixels per mask pixel
    mpp: float  # microns per mask pixel
    threshold: float  # saturation threshold used

    @property
    def area_mm2(self):
        return float(self.mask.sum()) * (self.mpp * 1e-3) ** 2

    def any_in(self, x0, y0, x1, y1):
        """Whether any tissue lies in the level-0 box [x0, x1) x [y0, y1)."""
        h, w = self.mask.shape
        c0, r0 = max(0, int(math.floor(x0 / self.downsample))), max(0, int(math.floor(y0 / self.downsample)))
        c1, r1 = min(w, int(math.ceil(x1 / self.downsample))), min(h, int(math.ceil(y1 / self.downsample)))
        return c1 > c0 and r1 > r0 and bool(self.mask[r0:r1, c0:c1].any())

    def bounds(self):
        """(x0, y0, x1, y1) of the tissue in level-0 pixels; None when there is none."""
        rows, cols = np.flatnonzero(self.mask.any(axis=1)), np.flatnonzero(self.mask.any(axis=0))
        if not len(rows):
            return None
        d = self.downsample
        return cols[0] * d, rows[0] * d, (cols[-1] + 1) * d, (rows[-1] + 1) * d


def glass_and_ink(rgb):
    """Two boolean (H, W) masks of pixels that are never tissue: glass; blue, green or black ink."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    glass = rgb.min(axis=-1) > WHITE_LEVEL
    blue = (b - r > PEN_MARGIN) & (b > g)
    green = (g - r > PEN_MARGIN // 2) & (g - b > PEN_MARGIN // 2)
    black = rgb.max(axis=-1) < BLACK_LEVEL
    return glass, blue | green | black


def tissue_from_rgb(rgb, mpp):
    """(mask, threshold) of a low-resolution uint8 RGB picture of ``mpp`` microns per pixel."""
    saturation = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)[..., 1]
    glass, ink = glass_and_ink(rgb)
    # Ink edges blend into what is around them; widen the ink by a pixel (not the glass: that would eat tissue rims).
    ink = cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    excluded = glass | ink
    otsu, _ = cv2.threshold(saturation.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = float(np.clip(otsu, MIN_SATURATION, MAX_SATURATION))
    mask = ((saturation > threshold) & ~excluded).astype(np.uint8)
    radius = max(1, int(round(16.0 / mpp)))  # ~16 um: the gap between cells closing should bridge
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask[ink] = 0  # closing must not bring ink back (small glass gaps inside tissue may stay bridged)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_pixels = MIN_TISSUE_AREA_UM2 / (mpp * mpp)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    return keep[labels], threshold


def detect_tissue(slide, tissue_mpp=DEFAULT_TISSUE_MPP):
    """``TissueMask`` of a ``Slide`` at about ``tissue_mpp`` microns per pixel (never finer than level 0)."""
    if not tissue_mpp > 0:
        raise ValueError(f"tissue_mpp must be a positive number of microns per mask pixel; got {tissue_mpp!r}.")
    downsample = max(1.0, tissue_mpp / slide.mpp)
    rgb = slide.read_downsampled(downsample)
    mpp = slide.mpp * downsample
    mask, threshold = tissue_from_rgb(rgb, mpp)
    return TissueMask(mask=mask, downsample=downsample, mpp=mpp, threshold=threshold)
