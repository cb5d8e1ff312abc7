"""Where the tiles of a sliding window go, and how much each tile's pixels count.

Pure NumPy: the plan depends only on sizes, never on the model or the backend.
"""

import dataclasses
import math

import numpy as np


def _pair(value, what):
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and v > 0 for v in value)
    ):
        raise ValueError(f"{what} must be a positive integer or a (height, width) pair of them; got {value!r}.")
    return int(value[0]), int(value[1])


def round_up(size, multiple):
    """The smallest multiple of ``multiple`` that is >= ``size``."""
    return -(-int(size) // int(multiple)) * int(multiple)


def reflect_indices(positions, size):
    """Source index of each position, mirrored about the edge pixels (NumPy's ``reflect``) as often as needed.

    Unlike ``np.pad(mode="reflect")`` this works for pads longer than the
    image, so a 20-pixel image can fill a 512-pixel tile.
    """
    positions = np.asarray(positions)
    period = max(2 * size - 2, 1)
    folded = np.mod(positions, period)
    return np.where(folded < size, folded, period - folded)


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``, evenly spread, the last flush with the end.

    Consecutive tiles overlap by at least ``overlap`` (a fraction of ``tile``).
    """
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    step = max(int(tile * (1.0 - overlap)), 1)
    count = math.ceil((length - tile) / step) + 1
    return np.round(np.linspace(0, length - tile, count)).astype(np.int64)


def gaussian_weights(shape, sigma_scale=0.125, floor=1e-4):
    """Separable Gaussian importance map (peak 1) over a tile, floored so no pixel weighs zero.

    Tile borders see zero padding and less context than the centre, so their
    predictions are less reliable; in overlaps the tile whose centre is closer
    dominates (the blending nnU-Net uses, sigma = tile / 8).
    """
    axes = []
    for n in shape:
        centre, sigma = (n - 1) / 2.0, max(n * sigma_scale, 1e-6)
        axes.append(np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2))
    weights = np.outer(axes[0], axes[1]).astype(np.float32)
    return np.maximum(weights / weights.max(), np.float32(floor))


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """Tile geometry for one image.

    The image is reflect-padded by ``margin`` on every side (and further at the
    bottom / right when it is smaller than one tile) to ``padded_shape``; tiles
    of ``tile_shape`` start at every (row, col) of ``rows`` x ``cols`` in the
    padded frame; the result is cropped back at ``(margin, margin)``.
    """

    image_shape: tuple
    tile_shape: tuple
    padded_shape: tuple
    margin: int
    rows: np.ndarray
    cols: np.ndarray
    trim: int

    @property
    def num_tiles(self):
        return len(self.rows) * len(self.cols)

    def positions(self):
        """Every tile's top-left corner in the padded frame, row-major."""
        return [(int(r), int(c)) for r in self.rows for c in self.cols]

    def weights(self, top, left):
        """Blending weights of the tile at (top, left): Gaussian, zero in the ``trim`` band of inner edges."""
        return _trimmed_weights(self.tile_shape, self.trim, *self._edges(top, left))

    def _edges(self, top, left):
        th, tw = self.tile_shape
        ph, pw = self.padded_shape
        # Edges on the padded frame's boundary keep their pixels: no other tile covers them.
        return top > 0, top + th < ph, left > 0, left + tw < pw


_WEIGHT_CACHE = {}


def _trimmed_weights(tile_shape, trim, cut_top, cut_bottom, cut_left, cut_right):
    key = (tile_shape, trim, cut_top, cut_bottom, cut_left, cut_right)
    if key not in _WEIGHT_CACHE:
        weights = gaussian_weights(tile_shape)
        if trim:
            weights = weights.copy()
            if cut_top:
                weights[:trim] = 0
            if cut_bottom:
                weights[-trim:] = 0
            if cut_left:
                weights[:, :trim] = 0
            if cut_right:
                weights[:, -trim:] = 0
        weights.setflags(write=False)
        _WEIGHT_CACHE[key] = weights
    return _WEIGHT_CACHE[key]


def plan_tiles(image_shape, tile=512, overlap=0.25, *, stride=1, margin=None, trim=0, fixed_tile=None):
    """The ``TilePlan`` for an image of ``image_shape`` (height, width).

    Args:
        tile: tile side or (height, width); a multiple of ``stride``. Images
            smaller than a tile use a smaller tile (the image size rounded up to
            ``stride``) instead of padding a mostly mirrored tile.
        overlap: fraction of a tile that neighbouring tiles share, in [0, 1).
        stride: the network's size multiple (``network_stride``).
        margin: reflect padding added on every side so that image borders get
            context; default ``tile // 16``.
        trim: pixels at the inner edges of each tile that get no weight at
            all (their receptive field reaches past the tile); needs an
            overlap of at least ``2 * trim`` pixels.
        fixed_tile: the model's fixed input (height, width), if it has one;
            every tile then has exactly that shape.
    """
    height, width = _pair(tuple(image_shape[:2]), "image size")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be a fraction in [0, 1); got {overlap!r}.")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive integer; got {stride!r}.")
    if fixed_tile is not None:
        tile_h, tile_w = _pair(tuple(fixed_tile), "the model's input size")
    else:
        tile_h, tile_w = _pair(tile, "tile")
        bad = [t for t in (tile_h, tile_w) if t % stride]
        if bad:
            raise ValueError(
                f"tile {tile_h}x{tile_w} is not a multiple of the network stride {stride}; "
                f"use e.g. {round_up(tile_h, stride)}x{round_up(tile_w, stride)}."
            )
    if margin is None:
        margin = min(tile_h, tile_w) // 16
    if not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be a non-negative integer; got {margin!r}.")
    if not isinstance(trim, (int, np.integer)) or trim < 0 or 2 * trim >= min(tile_h, tile_w):
        raise ValueError(f"trim must be an integer in [0, tile / 2); got {trim!r}.")
    if fixed_tile is None:
        tile_h = min(tile_h, round_up(height + 2 * margin, stride))
        tile_w = min(tile_w, round_up(width + 2 * margin, stride))
    padded = (max(height + 2 * margin, tile_h), max(width + 2 * margin, tile_w))
    rows = tile_starts(padded[0], tile_h, overlap)
    cols = tile_starts(padded[1], tile_w, overlap)
    for starts, size, axis in ((rows, tile_h, "rows"), (cols, tile_w, "columns")):
        if len(starts) > 1 and size - int(np.diff(starts).max()) < 2 * trim:
            raise ValueError(
                f"trim={trim} needs tiles overlapping by at least {2 * trim} px, but neighbouring tiles along the "
                f"{axis} overlap by only {size - int(np.diff(starts).max())} px; raise overlap or lower trim."
            )
    return TilePlan(
        image_shape=(height, width),
        tile_shape=(tile_h, tile_w),
        padded_shape=padded,
        margin=int(margin),
        rows=rows,
        cols=cols,
        trim=int(trim),
    )


def pad_image(image, plan):
    """The image reflect-padded to ``plan.padded_shape`` (``margin`` before, the rest after)."""
    ph, pw = plan.padded_shape
    rows = reflect_indices(np.arange(ph) - plan.margin, plan.image_shape[0])
    cols = reflect_indices(np.arange(pw) - plan.margin, plan.image_shape[1])
    return image[rows][:, cols]
