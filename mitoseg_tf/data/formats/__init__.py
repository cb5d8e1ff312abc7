"""Readers of the public mitosis and nuclei formats: ``read_records(name, data_dir)`` -> list of ``Record``.

One module per format; each exposes ``NAME``, ``DESCRIPTION``, ``EXPECTED``
(the layout it reads) and ``read(data_dir, **options)``.
"""

from mitoseg_tf.data.formats import (
    amibr,
    folder,
    midog,
    mitos12,
    mitos_atypia14,
    monuseg,
    tupac16,
    voc,
)
from mitoseg_tf.data.formats.record import Record, load_example, mask_centroids

FORMATS = {m.NAME: m for m in (folder, mitos12, mitos_atypia14, tupac16, midog, amibr, monuseg, voc)}


def get_format(name):
    """The reader module of dataset ``name``; ValueError listing the known names otherwise."""
    if name not in FORMATS:
        import difflib

        close = difflib.get_close_matches(str(name), FORMATS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown dataset {name!r}; available: {', '.join(FORMATS)}.{hint}")
    return FORMATS[name]


def read_records(name, data_dir, **options):
    """Parse dataset ``name`` under ``data_dir`` (no pixels decoded)."""
    return get_format(name).read(data_dir, **options)


__all__ = ["FORMATS", "Record", "get_format", "load_example", "mask_centroids", "read_records"]
