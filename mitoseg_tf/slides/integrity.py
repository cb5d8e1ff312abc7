"""Slides cut short or with a damaged tile: one error that names the file, the place and what to do.

OpenSlide opens a TIFF-based slide that was cut short without complaint and
tiffslide logs the broken page chain and opens what is left; both then fail on
the first missing or damaged tile with a codec's own message (zlib, JPEG, an
asyncio stack from zarr) that never says the file is incomplete. So a TIFF
slide's tile and strip table is checked against the file's size when it is
opened (it reads only the directories, not the pixels), and a region that does
not decode later is reported as damage, with the tile when tifffile can find it.
"""

import contextlib
import logging
import os
import re

# Formats that are TIFF inside; MRXS, VMS/VMU and DICOM are not, and keep their backend's own checks.
TIFF_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".scn", ".bif", ".svslide")
ADVICE = (
    "copy it again from the scanner or archive (an interrupted copy or download leaves a slide cut short), "
    "or re-export it from the scanner's software"
)
# The first bytes of a classic and of a Big TIFF, either byte order.
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# At most this many tiles are decoded to find the damaged one: the search must stay cheap on a huge region.
MAX_TILES_SEARCHED = 64


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        # tifffile names its objects by repr ("<tifffile.TiffPages @8> ..."): noise to a user.
        self.messages.append(_clean(record.getMessage()))


@contextlib.contextmanager
def _tifffile_messages():
    """tifffile's logged complaints, kept from stderr (they would print beside the one error we give)."""
    log = logging.getLogger("tifffile")
    collect = _Collect()
    propagate = log.propagate
    log.addHandler(collect)
    log.propagate = False
    try:
        yield collect.messages
    finally:
        log.removeHandler(collect)
        log.propagate = propagate


def _clean(err):
    return re.sub(r"<tifffile\.[^>]*> ?", "", str(err))


def _pages(tif):
    """Every page of the main chain and of the series' levels (an OME pyramid keeps its levels in SubIFDs)."""
    pages = {}
    for page in tif.pages:
        pages.setdefault(page.offset, page)
    for series in tif.series:
        for level in series.levels:
            for page in level.pages:
                if page is not None and hasattr(page, "dataoffsets"):
                    pages.setdefault(page.offset, page)
    return list(pages.values())


def _segment_name(page, index):
    if page.is_tiled:
        across = -(-page.imagewidth // page.tilewidth)
        kind = f"tile {index} (row {index // across}, column {index % across})"
    else:
        kind = f"strip {index}"
    return f"{kind} of TIFF page {page.index} ({page.imagewidth}x{page.imagelength} px)"


def check_complete(path):
    """Raise ValueError when the TIFF-based slide at ``path`` is cut short or its page chain is broken.

    Nothing is checked for other formats, or for a file tifffile cannot parse
    at all (every backend refuses that one at open, with its own message).
    """
    if os.path.splitext(path)[1].lower() not in TIFF_SUFFIXES:
        return
    import tifffile

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        is_tiff = fh.read(4) in TIFF_MAGIC
    with _tifffile_messages() as messages:
        try:
            tif = tifffile.TiffFile(path)
        except Exception as err:  # noqa: BLE001 - tifffile raises many types on a file that is not whole
            if not is_tiff:
                return  # not a TIFF at all: the backends say what it is not
            raise ValueError(
                f"{path}: the file is corrupt or truncated ({size:,} bytes): it starts as a TIFF but its first "
                f"directory cannot be read ({type(err).__name__}: {_clean(err)}); {ADVICE}."
            ) from err
        with tif:
            try:
                pages = _pages(tif)
            except Exception as err:  # noqa: BLE001 - a damaged directory raises whatever its parser hits
                raise ValueError(
                    f"{path}: the file is corrupt or truncated: a TIFF directory cannot be read "
                    f"({type(err).__name__}: {_clean(err)}); {ADVICE}."
                ) from err
            for page in pages:
                counts = page.databytecounts
                past = [i for i, (o, n) in enumerate(zip(page.dataoffsets, counts, strict=False)) if n and o + n > size]
                if past:
                    more = f" and {len(past) - 1} more of its {len(counts)} lie" if len(past) > 1 else " lies"
                    raise ValueError(
                        f"{path}: the file is truncated: it ends at byte {size:,}, but "
                        f"{_segment_name(page, past[0])}{more} beyond that; {ADVICE}."
                    )
    if messages:
        raise ValueError(
            f"{path}: the file is corrupt or truncated: its TIFF directories are damaged "
            f"(tifffile: {messages[0]}); {ADVICE}."
        )


def find_bad_tile(path, level_size, box):
    """The first tile of the TIFF page of ``level_size`` (w, h) inside ``box`` that does not decode, or None.

    ``box`` is (x0, y0, x1, y1) in that level's pixels. Best effort, for an
    error message: None whenever the file is not TIFF, the level is not one
    page, or every tile searched decodes.
    """
    if os.path.splitext(path)[1].lower() not in TIFF_SUFFIXES:
        return None
    try:
        import tifffile

        with _tifffile_messages(), tifffile.TiffFile(path) as tif:
            page = next(
                (p for p in _pages(tif) if p.is_tiled and (p.imagewidth, p.imagelength) == tuple(level_size)),
                None,
            )
            if page is None:
                return None
            across = -(-page.imagewidth // page.tilewidth)
            x0, y0, x1, y1 = box
            searched = 0
            for row in range(y0 // page.tilelength, (y1 - 1) // page.tilelength + 1):
                for col in range(x0 // page.tilewidth, (x1 - 1) // page.tilewidth + 1):
                    index = row * across + col
                    searched += 1
                    if searched > MAX_TILES_SEARCHED:
                        return None
                    tif.filehandle.seek(page.dataoffsets[index])
                    data = tif.filehandle.read(page.databytecounts[index])
                    try:
                        page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
                    except Exception:  # noqa: BLE001 - each codec raises its own type: any is the damage sought
                        return _segment_name(page, index)
    except Exception:  # noqa: BLE001 - only a better message was at stake
        return None
    return None
