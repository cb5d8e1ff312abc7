"""Readers of the public mitosis and nuclei formats: ``read_records(name, data_dir)`` -> list of ``Record``.

One module per format; each exposes ``NAME``, ``DESCRIPTION``, ``EXPECTED``
(the layout it reads) and ``read(data_dir, **options)``.
"""

import os
from types import ModuleType
from typing import Any

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


def get_format(name: str) -> ModuleType:
    """The reader module of dataset ``name`` (its ``NAME``, ``DESCRIPTION``, ``EXPECTED`` and ``read``).

    Raises:
        ValueError: an unknown name; the message lists the known ones.
    """
    if name not in FORMATS:
        import difflib

        close = difflib.get_close_matches(str(name), FORMATS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown dataset {name!r}; available: {', '.join(FORMATS)}.{hint}")
    return FORMATS[name]


def read_records(name: str, data_dir: str | os.PathLike, **options: Any) -> list[Record]:
    """Parse dataset ``name`` under ``data_dir`` (no pixels decoded).

    Args:
        name: a dataset of ``FORMATS`` (``mitoseg datasets list``).
        data_dir: the folder holding the files you obtained.
        **options: the format's ``read`` options (``mpp``, ...).

    Returns:
        One ``Record`` per labelled image.

    Raises:
        ValueError: an unknown name, or what the format's ``read`` raises.
    """
    return get_format(name).read(data_dir, **options)


__all__ = ["FORMATS", "Record", "get_format", "load_example", "mask_centroids", "read_records"]
