"""Tiles of a slide at the detector's resolution: plan, streamed reading, ownership of figures, resume state.

The slide is seen as one "work image" at the detector's pixel size (``scale``
level-0 pixels per work pixel). It is cut into square cores of ``tile`` work
pixels that partition it; each core is read with ``margin`` work pixels of
context on every side (clipped at the slide's edge), from the pyramid level
closest to but not coarser than the detector's resolution, and resampled to
it. A figure is kept only by the tile whose core holds its centroid, so a
figure on a seam, seen by two tiles, is counted once.
"""

import dataclasses
import json
import math
import os
import queue
import tempfile
import threading
import time

import numpy as np

from mitoseg_tf.detection.figures import Figure, rescale_figure, shift_figure
from mitoseg_tf.inference.resample import resize, same_resolution

STATE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Tile:
    index: int
    row: int  # grid position of the core
    col: int
    window: tuple  # (c0, r0, c1, r1) work pixels read: the core plus its margin, inside the work image
    core: tuple  # (c0, r0, c1, r1) work pixels owned


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """Where each tile lies in work pixels and how work pixels map to the slide's levels."""

    scale: float  # level-0 pixels per work pixel
    level: int  # pyramid level read
    work_mpp: float
    work_shape: tuple  # (height, width) of the work image
    tile: int
    margin: int
    grid: tuple  # (rows, cols) of cores

    def tiles(self):
        rows, cols = self.grid
        h, w = self.work_shape
        for r in range(rows):
            for c in range(cols):
                core = (c * self.tile, r * self.tile, min(w, (c + 1) * self.tile), min(h, (r + 1) * self.tile))
                window = (
                    max(0, core[0] - self.margin),
                    max(0, core[1] - self.margin),
                    min(w, core[2] + self.margin),
                    min(h, core[3] + self.margin),
                )
                yield Tile(index=r * cols + c, row=r, col=c, window=window, core=core)

    def core_level0(self, tile):
        """The core as a level-0 box (x0, y0, x1, y1)."""
        return tuple(v * self.scale for v in tile.core)

    def owner(self, figure):
        """(row, col) of the core holding a figure's level-0 centroid (edges clamp to the outer tiles)."""
        y, x = ((v + 0.5) / self.scale for v in figure.centroid)
        rows, cols = self.grid
        return min(rows - 1, max(0, int(y // self.tile))), min(cols - 1, max(0, int(x // self.tile)))

    def signature(self):
        return {
            "scale": self.scale,
            "level": self.level,
            "work_mpp": self.work_mpp,
            "work_shape": list(self.work_shape),
            "tile": self.tile,
            "margin": self.margin,
        }


def plan_tiles(slide, detector_mpp, *, tile=1024, margin=128):
    """``TilePlan`` of a ``Slide`` for a detector of ``detector_mpp`` (None: the slide's own level 0)."""
    if not (isinstance(tile, int) and tile >= 64):
        raise ValueError(f"tile must be a whole number of pixels >= 64 (at the detector's resolution); got {tile!r}.")
    if not (isinstance(margin, int) and 0 <= margin < tile):
        raise ValueError(f"margin must be a whole number of pixels in [0, tile); got {margin!r}.")
    work_mpp = slide.mpp if detector_mpp is None else float(detector_mpp)
    scale = work_mpp / slide.mpp
    level = slide.level_for_downsample(scale)
    if same_resolution(slide.level_mpp(level), work_mpp):
        # Within 1 %: read the level's pixels as they are, resampling would only blur them.
        scale = slide.level_downsamples[level]
    width, height = slide.dimensions
    work_shape = (max(1, int(round(height / scale))), max(1, int(round(width / scale))))
    grid = (math.ceil(work_shape[0] / tile), math.ceil(work_shape[1] / tile))
    return TilePlan(
        scale=scale, level=level, work_mpp=work_mpp, work_shape=work_shape, tile=tile, margin=margin, grid=grid
    )


def read_tile(slide, plan, tile):
    """(uint8 work-resolution window, (row_factor, col_factor, y0, x0)) mapping its pixels to level 0."""
    ds = slide.level_downsamples[plan.level]
    c0, r0, c1, r1 = tile.window
    lx0, ly0 = int(math.floor(c0 * plan.scale / ds)), int(math.floor(r0 * plan.scale / ds))
    lx1, ly1 = int(math.ceil(c1 * plan.scale / ds - 1e-9)), int(math.ceil(r1 * plan.scale / ds - 1e-9))
    region = slide.read_region(lx0 * ds, ly0 * ds, lx1 - lx0, ly1 - ly0, plan.level)
    out_h = max(1, int(round((ly1 - ly0) * ds / plan.scale)))
    out_w = max(1, int(round((lx1 - lx0) * ds / plan.scale)))
    if (out_h, out_w) != region.shape[:2]:
        region = np.clip(np.round(resize(region, (out_h, out_w))), 0, 255).astype(np.uint8)
    mapping = ((ly1 - ly0) * ds / out_h, (lx1 - lx0) * ds / out_w, ly0 * ds, lx0 * ds)
    return region, mapping


def to_level0(figures, mapping):
    row_factor, col_factor, y0, x0 = mapping
    if (row_factor, col_factor) != (1.0, 1.0):
        figures = [rescale_figure(f, row_factor, col_factor) for f in figures]
    return [shift_figure(f, y0, x0) for f in figures]


class _Failed:
    def __init__(self, error):
        self.error = error


_DONE = object()


def stream_tiles(slide, plan, tiles, *, prefetch=4):
    """Yield (tile, window, mapping, read_seconds) read on a background thread, at most ``prefetch`` ahead.

    Reading (decode + resample) overlaps the network; the bounded queue keeps
    memory to ``prefetch`` windows whatever the slide's size. Closing the
    generator (an error downstream) stops the thread.
    """
    q = queue.Queue(maxsize=max(1, int(prefetch)))
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for tile in tiles:
                start = time.perf_counter()
                window, mapping = read_tile(slide, plan, tile)
                if not put((tile, window, mapping, time.perf_counter() - start)):
                    return
            put(_DONE)
        except BaseException as err:  # handed to the consumer, which re-raises it where it can be seen
            put(_Failed(err))

    thread = threading.Thread(target=work, name=f"read {slide.name}", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


# --- resume state -------------------------------------------------------------------------------------------


def figure_to_dict(figure):
    return dataclasses.asdict(figure)


def figure_from_dict(d):
    return Figure(
        centroid=tuple(d["centroid"]),
        area_px=int(d["area_px"]),
        area_um2=float(d["area_um2"]),
        score=float(d["score"]),
        polygon=tuple(tuple(p) for p in d["polygon"]),
        bbox=tuple(d["bbox"]),
    )


def write_atomic(path, write):
    """Call ``write(temp_path)`` then rename onto ``path``: a reader never sees a half-written file."""
    folder, name = os.path.split(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=folder)
    os.close(fd)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


class ResumeState:
    """Tiles done and their kept figures, in a small JSON file beside the outputs."""

    def __init__(self, path, key):
        self.path, self.key = path, key
        self.done = {}  # tile index -> list of level-0 Figure
        self._saved_at = time.monotonic()
        self._dirty = False

    @classmethod
    def load(cls, path, key):
        state = cls(path, key)
        if path and os.path.isfile(path):
            try:
                with open(path) as fh:
                    saved = json.load(fh)
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: cannot read the resume state ({err}); delete it to start over.") from None
            if saved.get("format") != STATE_FORMAT or saved.get("key") != key:
                raise ValueError(
                    f"{path}: the resume state was written for another slide, detector or tiling "
                    f"({saved.get('key')} != {key}); delete it or run without resume to start over."
                )
            state.done = {int(i): [figure_from_dict(f) for f in figs] for i, figs in saved["done"].items()}
        return state

    def add(self, index, figures):
        self.done[index] = list(figures)
        self._dirty = True

    def save(self, every_s=0.0):
        """Write the state when anything changed and ``every_s`` seconds have passed since the last write."""
        if not self.path or not self._dirty or time.monotonic() - self._saved_at < every_s:
            return
        payload = {
            "format": STATE_FORMAT,
            "key": self.key,
            "done": {str(i): [figure_to_dict(f) for f in figs] for i, figs in sorted(self.done.items())},
        }

        def write(temp):
            with open(temp, "w") as fh:
                json.dump(payload, fh)

        write_atomic(self.path, write)
        self._saved_at, self._dirty = time.monotonic(), False
