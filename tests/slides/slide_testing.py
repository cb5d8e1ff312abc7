"""Test slides written with tifffile and a detector that needs no network: dark blobs are figures."""

import time

import numpy as np
import tifffile
from skimage import measure

from mitoseg_tf.detection.figures import extract_figures
from mitoseg_tf.detector.settings import DetectionSettings

TISSUE = (214, 150, 190)  # eosin pink: saturated, so the tissue finder keeps it
BLOB = (60, 25, 95)  # dark haematoxylin purple: the fake detector's "figures"
BLOB_LEVEL = 120  # grey below this is a figure pixel


def aperio_description(width, height, mpp=None, level_size=None):
    if level_size is not None:
        return f"Aperio Image Library v12.0.0\n{width}x{height} -> {level_size[0]}x{level_size[1]}"
    extra = "" if mpp is None else f"|MPP = {mpp}"
    return f"Aperio Image Library v12.0.0\n{width}x{height} [0,0 {width}x{height}] (256x256) RAW|AppMag = 40{extra}"


def write_pyramid(path, image, *, mpp=0.25, downsamples=(1, 4, 16), compression="deflate", aperio=True):
    """A tiled pyramidal TIFF of ``image`` (level 0) with levels shrunk by block averaging."""
    height, width = image.shape[:2]
    with tifffile.TiffWriter(path) as tif:
        for i, ds in enumerate(downsamples):
            if ds == 1:
                level = image
            else:
                h, w = height // ds, width // ds
                level = image[: h * ds, : w * ds].reshape(h, ds, w, ds, 3).mean(axis=(1, 3)).round().astype(np.uint8)
            if aperio:
                description = (
                    aperio_description(width, height, mpp)
                    if i == 0
                    else aperio_description(width, height, level_size=(level.shape[1], level.shape[0]))
                )
            else:
                description = None
            tif.write(
                level,
                tile=(256, 256),
                compression=compression,
                photometric="rgb",
                description=description,
                subfiletype=0 if i == 0 else 1,
                metadata=None,
            )
    return path


def blob_canvas(height, width, blobs, *, tissue_boxes=(), radius=9):
    """White glass, pink ``tissue_boxes`` (x0, y0, x1, y1) and dark disks of ``radius`` px at ``blobs`` (x, y)."""
    image = np.full((height, width, 3), 255, np.uint8)
    for x0, y0, x1, y1 in tissue_boxes:
        image[y0:y1, x0:x1] = TISSUE
    yy, xx = np.mgrid[:height, :width]
    for x, y in blobs:
        r0, r1, c0, c1 = (
            max(0, y - radius - 1),
            min(height, y + radius + 2),
            max(0, x - radius - 1),
            min(width, x + radius + 2),
        )
        disk = (yy[r0:r1, c0:c1] - y) ** 2 + (xx[r0:r1, c0:c1] - x) ** 2 <= radius**2
        image[r0:r1, c0:c1][disk] = BLOB
    return image


class FakeDetector:
    """The ``Detector`` contract without a network: dark pixels form figures. Counts calls and pixels seen."""

    def __init__(self, mpp=0.25, object_class="Mitosis", fail_after=None, min_area_um2=5.0, hang_after=None):
        self.mpp = mpp
        self.object_class = object_class
        self.settings = DetectionSettings(min_area_um2=min_area_um2, chosen_by="test")
        self.calls = 0
        self.pixels = 0
        self.fail_after = fail_after
        self.hang_after = hang_after  # calls after which it hangs (a process to kill mid-slide)

    def describe(self):
        return f"fake dark-blob detector at {self.mpp} um/px"

    def summary(self):
        return {"name": "fake", "mpp": self.mpp, "object_class": self.object_class}

    def figures_native(self, image, mpp=None, probability=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        if self.hang_after is not None and self.calls >= self.hang_after:
            time.sleep(3600)
        self.calls += 1
        self.pixels += image.shape[0] * image.shape[1]
        dark = (image.astype(np.float32).mean(axis=-1) < BLOB_LEVEL).astype(np.float32)
        return extract_figures(dark, mpp=self.mpp or mpp, threshold=0.5, min_area_um2=self.settings.min_area_um2)


def count_components(image):
    return int(measure.label(image.astype(np.float32).mean(axis=-1) < BLOB_LEVEL).max())
