"""The figures CSV that ``mitoseg predict`` and ``mitoseg slide`` write: one numbered row per figure.

The numbers are the ones written on the pictures (``drawing.number_figures``
order), so a row, a ring on the overview and a gallery crop can be matched by
eye. Positions are (x, y) from the top-left corner in pixels (``Figure.xy``)
and in microns (the same times ``mpp``), the convention of every file the
package writes.
"""

import csv

from mitoseg_tf.detection.drawing import number_figures

FIGURE_COLUMNS = ("number", "x_px", "y_px", "x_um", "y_um", "score", "area_um2")


def figure_rows(figures, mpp):
    """One row per figure, numbered 1, 2, ... in ``number_figures`` order."""
    for number, figure in enumerate(number_figures(figures), start=1):
        x, y = figure.xy
        yield {
            "number": number,
            "x_px": f"{x:.2f}",
            "y_px": f"{y:.2f}",
            "x_um": f"{x * mpp:.2f}",
            "y_um": f"{y * mpp:.2f}",
            "score": f"{figure.score:.4f}",
            "area_um2": f"{figure.area_um2:.2f}",
        }


def write_figures_csv(figures, mpp, path):
    """``figure_rows`` of ``figures`` as a CSV file at ``path``."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIGURE_COLUMNS)
        writer.writeheader()
        writer.writerows(figure_rows(figures, mpp))
