"""A detector over image files: every image predicted, written and counted; a bad file is reported, not fatal."""

import csv
import dataclasses
import logging
import os

from tqdm.auto import tqdm

from mitoseg_tf.data.images import IMAGE_SUFFIXES, read_image
from mitoseg_tf.data.pixel_size import image_pixel_sizes
from mitoseg_tf.detection.counting import DEFAULT_HPF10_AREA_MM2
from mitoseg_tf.detector.outputs import COUNT_COLUMNS, counts_row, failed_row, write_prediction

COUNTS_FILE = "counts.csv"
log = logging.getLogger("mitoseg_tf.detector")


def list_image_files(path):
    """The image files named by ``path``: the file itself, or a folder's images sorted by name."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise ValueError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in folder {path!r}.")
        return files
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} is neither an image file nor a folder.")
    return [path]


@dataclasses.dataclass
class FilesResult:
    rows: list  # counts.csv rows, failed images included with their reason
    counts_path: str

    @property
    def failures(self):
        return [r for r in self.rows if r["status"] != "ok"]


def predict_files(detector, inputs, *, mpp=None, out_dir, hpf10_area_mm2=DEFAULT_HPF10_AREA_MM2, progress=None,
                  on_image=None, mpp_given_by="mpp"):  # fmt: skip
    """Predict every image of ``inputs`` (a file or folder) and write its files and ``counts.csv``.

    ``mpp``: microns per pixel of every image (``mpp_given_by`` names it in
    messages and outputs, e.g. ``"--mpp"``); None: each image's own, read from
    the file (``data.pixel_size``). Every pixel size is settled before any
    prediction: one ValueError names the images that have none. A given ``mpp``
    that a file contradicts is warned of once and noted in that image's row.
    An unreadable image is listed in counts.csv with its error and the others
    go on. ``on_image(row)`` is called after each image (the CLI prints);
    ``progress``: a tqdm bar over images (default: when stderr is a terminal).
    """
    files = list_image_files(inputs) if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    sizes = image_pixel_sizes(files, mpp, given_by=mpp_given_by)
    contradicted = [path for path, size in sizes.items() if size is not None and size.note]
    if contradicted:
        log.warning("%s %g um/px is used for every image, but %d of them state another pixel size, e.g. %s: %s.",
                    mpp_given_by, sizes[contradicted[0]].mpp, len(contradicted), os.path.basename(contradicted[0]),
                    sizes[contradicted[0]].note)  # fmt: skip
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    bar = tqdm(files, desc="images", unit="image", disable=None if progress is None else not progress, leave=False)
    for path in bar:
        name = os.path.basename(path)
        try:
            image = read_image(path)
        except (ValueError, FileNotFoundError) as err:
            rows.append(failed_row(name, err))
        else:
            size = sizes[path]
            prediction = detector.predict(image, mpp=size.mpp, mpp_source=size.origin)
            write_prediction(prediction, image, out_dir, os.path.splitext(name)[0])
            rows.append(counts_row(name, prediction, hpf10_area_mm2=hpf10_area_mm2))
        if on_image is not None:
            on_image(rows[-1])
    counts_path = os.path.join(out_dir, COUNTS_FILE)
    with open(counts_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COUNT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return FilesResult(rows=rows, counts_path=counts_path)
