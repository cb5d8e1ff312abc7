"""A detector over image files: every image predicted, written and counted; a bad file is reported, not fatal."""

import csv
import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from mitoseg_tf.data.images import IMAGE_SUFFIXES, read_image
from mitoseg_tf.data.pixel_size import image_pixel_sizes
from mitoseg_tf.detection.counting import DEFAULT_HPF10_AREA_MM2
from mitoseg_tf.detector.outputs import COUNT_COLUMNS, counts_row, failed_row, write_prediction
from mitoseg_tf.errors import USER_ERRORS

if TYPE_CHECKING:
    from mitoseg_tf.detector.detector import Detector

COUNTS_FILE = "counts.csv"
log = logging.getLogger("mitoseg_tf.detector")


def check_out_dir(out_dir, inputs=(), option="--out"):
    """Refuse an output folder that cannot be one, or that holds input files (a later run would read the outputs).

    ``inputs``: the input files or folders; ``option`` names the folder in messages.
    """
    out = os.path.abspath(out_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{option} {out_dir!r} is a file; give a folder (it is created if missing).")
    parent = os.path.dirname(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{option} {out_dir!r} lies under the file {parent!r}; give a folder.")
    existing = out if os.path.isdir(out) else parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {out_dir!r}: no permission to write in {existing!r}.")
    real = os.path.realpath(out)
    holding = [
        p for p in inputs if os.path.realpath(p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))) == real
    ]
    if holding:
        raise ValueError(
            f"{option} {out_dir!r} is the folder of the input {holding[0]!r}: the outputs would mix with the "
            "inputs (and be read as inputs next time); give another folder."
        )


def output_stems(files):
    """The name each file's outputs start with: its name without the suffix, or with it where two share a stem.

    ``x.png`` and ``x.jpg`` in one folder write ``x.png_overlay.jpg`` and
    ``x.jpg_overlay.jpg`` instead of overwriting one ``x_overlay.jpg``. Two
    inputs of the same file name (from two folders) are an error.
    """
    names = [os.path.basename(p) for p in files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        same = [p for p in files if os.path.basename(p) == repeated[0]]
        raise ValueError(
            f"{len(same)} inputs share the file name {repeated[0]} ({', '.join(same[:3])}): their "
            "outputs and counts.csv rows would be confused; predict them into separate folders."
        )
    stems = [os.path.splitext(n)[0] for n in names]
    return {p: stem if stems.count(stem) == 1 else name for p, name, stem in zip(files, names, stems)}


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


def predict_files(
    detector: "Detector",
    inputs: "str | os.PathLike | Iterable[str | os.PathLike]",
    *,
    mpp: float | None = None,
    out_dir: "str | os.PathLike",
    hpf10_area_mm2: float = DEFAULT_HPF10_AREA_MM2,
    progress: bool | None = None,
    on_image: "Callable[[dict], None] | None" = None,
    mpp_given_by: str = "mpp",
) -> FilesResult:
    """Predict every image of ``inputs`` and write its files and ``counts.csv``.

    A given ``mpp`` that a file contradicts is warned of once and noted in that
    image's row. An image that cannot be read or predicted is listed in
    counts.csv with its error and the others go on; counts.csv is rewritten
    after every image, so a run that dies keeps the rows before it.

    Args:
        detector: what predicts each image (``Detector.predict``).
        inputs: an image file, a folder of them, or a list of image files.
        mpp: microns per pixel of every image; None reads each image's own from
            its file (``data.pixel_size``).
        out_dir: the output folder (created if missing; must pass ``check_out_dir``).
            Each image's outputs are named by ``output_stems``.
        hpf10_area_mm2: the area that counts.csv's "per 10 HPF" column divides by.
        progress: a tqdm bar over images; None shows one when stderr is a terminal.
        on_image: called with each image's counts.csv row after it is written (the CLI prints it).
        mpp_given_by: how ``mpp`` was given (e.g. ``"--mpp"``), named in messages and outputs.

    Returns:
        ``FilesResult``: the counts.csv rows (failed images included, with their reason) and its path.

    Raises:
        ValueError: ``out_dir`` cannot be an output folder, or some images have no
            pixel size (one message names them all, before any prediction).
    """
    files = list_image_files(inputs) if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    check_out_dir(out_dir, files, option="out_dir")
    stems = output_stems(files)
    sizes = image_pixel_sizes(files, mpp, given_by=mpp_given_by)
    contradicted = [path for path, size in sizes.items() if size is not None and size.note]
    if contradicted:
        log.warning(
            "%s %g um/px is used for every image, but %d of them state another pixel size, e.g. %s: %s.",
            mpp_given_by,
            sizes[contradicted[0]].mpp,
            len(contradicted),
            os.path.basename(contradicted[0]),
            sizes[contradicted[0]].note,
        )
    os.makedirs(out_dir, exist_ok=True)
    counts_path = os.path.join(out_dir, COUNTS_FILE)
    rows = []
    bar = tqdm(files, desc="images", unit="image", disable=None if progress is None else not progress, leave=False)
    for path in bar:
        name = os.path.basename(path)
        try:
            image = read_image(path)
            size = sizes[path]
            prediction = detector.predict(image, mpp=size.mpp, mpp_source=size.origin)
            write_prediction(prediction, image, out_dir, stems[path])
            rows.append(counts_row(name, prediction, hpf10_area_mm2=hpf10_area_mm2))
        except Exception as err:  # noqa: BLE001 - one image's fault must not cost the others theirs
            if not isinstance(err, USER_ERRORS):
                log.debug("%s failed", path, exc_info=True)
            rows.append(failed_row(name, err))
        _write_counts(counts_path, rows)  # after every image: a run that dies keeps the rows before it
        if on_image is not None:
            on_image(rows[-1])
    _write_counts(counts_path, rows)
    return FilesResult(rows=rows, counts_path=counts_path)


def _write_counts(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COUNT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
