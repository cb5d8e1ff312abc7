"""``predict_slide``: every figure of a whole slide, its tissue area, hotspot and counts; ``predict_slides`` for a folder."""

import csv
import dataclasses
import hashlib
import json
import os
import time

import numpy as np
from tqdm.auto import tqdm

from mitoseg_tf.defaults import (
    DEFAULT_HOTSPOT_MIN_TISSUE,
    DEFAULT_HOTSPOT_SHAPE,
    DEFAULT_HOTSPOTS,
    DEFAULT_SLIDE_MARGIN,
    DEFAULT_SLIDE_PREFETCH,
    DEFAULT_SLIDE_TILE,
    DEFAULT_STATE_EVERY_S,
)
from mitoseg_tf.detection.hotspot import find_hotspots, ten_hpf
from mitoseg_tf.errors import error_message
from mitoseg_tf.slides.outputs import write_slide_outputs
from mitoseg_tf.slides.reader import dicom_series, is_slide_file, open_slide
from mitoseg_tf.slides.tiles import ResumeState, plan_tiles, stream_tiles, to_level0, write_atomic
from mitoseg_tf.slides.tissue import DEFAULT_TISSUE_MPP, detect_tissue

DEFAULT_TILE = DEFAULT_SLIDE_TILE  # the names this module has always exported
DEFAULT_MARGIN = DEFAULT_SLIDE_MARGIN
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = (
    "slide",
    "status",
    "object_class",
    "count",
    "tissue_area_mm2",
    "per_mm2",
    "hotspot_count",
    "hotspot_tissue_mm2",
    "hotspot_per_10hpf",
    "nottingham",
    "hpf10_area_mm2",
    "mpp",
    "width",
    "height",
    "seconds",
)


@dataclasses.dataclass
class SlideResult:
    """What a detector found on one slide. Figures are in level-0 pixels (``mpp`` microns each)."""

    path: str
    backend: str
    mpp: float
    dimensions: tuple  # (width, height) of level 0
    object_class: str
    detector: str
    figures: tuple
    tissue: object  # slides.tissue.TissueMask
    hotspots: list  # detection.hotspot.Hotspot, best first; empty for nuclei or without a window on enough tissue
    hpf10_area_mm2: float  # the one 10-HPF area of every per-10-HPF number and the Nottingham score
    field_diameter_mm: float  # the field that makes it: 10 of them cover hpf10_area_mm2
    seconds: float
    tiles: dict  # total, with_tissue, run, resumed
    timing: dict  # seconds: tissue, reading (background thread), waiting for reads, network, stitching
    outputs: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self):
        return os.path.basename(self.path.rstrip(os.sep))

    @property
    def count(self):
        return len(self.figures)

    @property
    def tissue_area_mm2(self):
        return self.tissue.area_mm2

    @property
    def hotspot(self):
        return self.hotspots[0] if self.hotspots else None

    @property
    def per_mm2(self):
        """Figures per mm^2 of tissue; None when no tissue was found."""
        area = self.tissue_area_mm2
        return self.count / area if area > 0 else None

    def positions_um(self):
        """(K, 2) float64 (x, y) of every figure's centroid in microns from the slide's top-left corner."""
        rc = np.array([f.centroid for f in self.figures], np.float64).reshape(-1, 2)
        return (rc[:, ::-1] + 0.5) * self.mpp

    def counts(self):
        """Count and density over the tissue; for mitoses also the hotspot's count, per 10 HPF and Nottingham score."""
        out = {"count": self.count, "tissue_area_mm2": self.tissue_area_mm2, "per_mm2": self.per_mm2}
        if self.object_class == "Mitosis":
            hot = self.hotspot
            out.update(
                {
                    "hotspot_count": hot.count if hot else None,
                    "hotspot_area_mm2": hot.area_mm2 if hot else None,
                    "hotspot_tissue_mm2": hot.tissue_area_mm2 if hot else None,
                    "hotspot_per_10hpf": hot.per_10hpf if hot else None,
                    "nottingham": hot.nottingham if hot else None,
                }
            )
        return out

    def summary(self):
        """JSON-ready facts of the slide (no figures: those are in the GeoJSON and CSV)."""
        return {
            "slide": self.name,
            "path": self.path,
            "backend": self.backend,
            "mpp": self.mpp,
            "width": self.dimensions[0],
            "height": self.dimensions[1],
            "object_class": self.object_class,
            "detector": self.detector,
            **self.counts(),
            "hpf10_area_mm2": self.hpf10_area_mm2,
            "field_diameter_mm": self.field_diameter_mm,
            "hotspots_um": [{k: v for k, v in h.to_dict().items() if k != "indices"} for h in self.hotspots],
            "seconds": round(self.seconds, 3),
            "tiles": self.tiles,
            "timing": {k: round(v, 3) for k, v in self.timing.items()},
            "outputs": self.outputs,
        }


def _slide_key(slide, plan, detector, tissue_mpp):
    """What a resume state must match: the same file, tiling and detector give the same figures."""
    files = dicom_series(slide.path) or [slide.path]
    facts = {
        "slide": slide.name,
        "bytes": sum(os.path.getsize(f) for f in files),
        "dimensions": list(slide.dimensions),
        "mpp": slide.mpp,
        "plan": plan.signature(),
        "tissue_mpp": tissue_mpp,
        "detector": detector.describe(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _check_options(hotspots, prefetch, hotspot_options):
    # The hotspot's options are checked now, on nothing, not after hours of tiles.
    find_hotspots(np.zeros((0, 2)), tissue=np.ones((1, 1), bool), tissue_mpp=1.0, **hotspot_options)
    if not (isinstance(hotspots, int) and hotspots >= 1):
        raise ValueError(f"hotspots must be a whole number >= 1 of windows to report; got {hotspots!r}.")
    if not (isinstance(prefetch, int) and prefetch >= 1):
        raise ValueError(f"prefetch must be a whole number >= 1 of tiles read ahead; got {prefetch!r}.")


def _tiles_on_tissue(plan, tissue):
    """Every tile of ``plan``, and those whose core touches ``tissue``: only these reach the network."""
    margin0 = tissue.downsample  # one mask pixel: the coarse mask may miss a rim the core still holds
    all_tiles = list(plan.tiles())
    with_tissue = []
    for t in all_tiles:
        x0, y0, x1, y1 = plan.core_level0(t)
        if tissue.any_in(x0 - margin0, y0 - margin0, x1 + margin0, y1 + margin0):
            with_tissue.append(t)
    return all_tiles, with_tissue


def _resume_state(slide, plan, detector, tissue_mpp, out_dir, stem, resume):
    """The ``ResumeState`` of ``out_dir``'s state file when resuming, else a fresh one (saved only with ``out_dir``)."""
    state_path = os.path.join(out_dir, f"{stem}.resume.json") if out_dir else None
    key = _slide_key(slide, plan, detector, tissue_mpp)
    return ResumeState.load(state_path, key) if resume else ResumeState(state_path, key)


def _detect_tiles(detector, slide, plan, todo, state, timing, tiles, prefetch, progress, state_every_s):
    """Run ``detector`` over the tiles ``todo``, each tile's own figures into ``state`` and its seconds into ``timing``.

    The bar counts up to ``tiles["with_tissue"]`` from the ``tiles["resumed"]`` done before.
    """
    bar = tqdm(
        total=tiles["with_tissue"],
        initial=tiles["resumed"],
        desc=slide.name,
        unit="tile",
        leave=False,
        disable=None if progress else True,
    )
    try:
        waited = time.perf_counter()
        for t, window, mapping, read_s in stream_tiles(slide, plan, todo, prefetch=prefetch):
            now = time.perf_counter()
            timing["wait_s"] += now - waited
            timing["read_s"] += read_s
            found = detector.figures_native(window, mpp=plan.work_mpp)
            after = time.perf_counter()
            timing["network_s"] += after - now
            kept = [f for f in to_level0(found, mapping) if plan.owner(f) == (t.row, t.col)]
            state.add(t.index, kept)
            state.save(state_every_s)
            bar.update(1)
            waited = time.perf_counter()
            timing["stitch_s"] += waited - after
    finally:
        bar.close()
        # Also on an error or Ctrl-C: what is done stays done for resume=True.
        state.save()


def _slide_result(path, slide, detector, tissue, state, tiles, timing, hpf10_area_mm2, field_diameter_mm):
    """The ``SlideResult`` of every tile in ``state``, best figure first; hotspots and seconds still to fill."""
    figures = [f for i in sorted(state.done) for f in state.done[i]]
    figures.sort(key=lambda f: (-f.score, f.centroid[0], f.centroid[1]))
    return SlideResult(
        path=os.fspath(path),
        backend=slide.backend,
        mpp=slide.mpp,
        dimensions=slide.dimensions,
        object_class=detector.object_class,
        detector=detector.describe(),
        figures=tuple(figures),
        tissue=tissue,
        hotspots=[],
        hpf10_area_mm2=hpf10_area_mm2,
        field_diameter_mm=field_diameter_mm,
        seconds=0.0,
        tiles=tiles,
        timing=timing,
    )


def predict_slide(
    detector,  # a Detector; not annotated, since slides sit below detector/ and do not import it
    path: str | os.PathLike,
    *,
    mpp: float | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    hpf10_area_mm2: float | None = None,
    field_diameter_mm: float | None = None,
    hotspot_area_mm2: float | None = None,
    hotspot_fields: float | None = None,
    hotspot_shape: str = DEFAULT_HOTSPOT_SHAPE,
    hotspot_min_tissue: float = DEFAULT_HOTSPOT_MIN_TISSUE,
    hotspots: int = DEFAULT_HOTSPOTS,
    tissue_mpp: float = DEFAULT_TISSUE_MPP,
    prefetch: int = DEFAULT_SLIDE_PREFETCH,
    progress: bool = True,
    state_every_s: float = DEFAULT_STATE_EVERY_S,
) -> "SlideResult":
    """Run ``detector`` over the tissue of the slide at ``path``; returns a ``SlideResult``.

    Args:
        detector: a ``mitoseg_tf.detector.Detector`` (or anything with its
            ``mpp``, ``object_class``, ``describe()`` and ``figures_native``).
        mpp: microns per level-0 pixel; overrides the slide's metadata and is
            required for plain images and slides without it.
        out_dir: write the slide's files there (see ``slides.outputs``), named by
            the slide's whole file name (``a.svs.geojson``: ``a.svs`` and
            ``a.tif`` keep theirs apart); None: only return.
        resume: continue from ``out_dir``'s state file of an interrupted run
            of the same slide, detector and tiling (same figures as one run).
        tile, margin: core side and context on each side, in pixels at the
            detector's resolution (memory and speed, not results).
        hpf10_area_mm2 / field_diameter_mm: the high-power field, one or the
            other (default MIDOG's 2 mm^2 for 10 fields; ``detection.hotspot.ten_hpf``):
            the hotspot's default area, per 10 HPF and the Nottingham cut-offs.
        hotspot_area_mm2 / hotspot_fields: the hotspot window as an area or as
            this many high-power fields (default: 10 HPF); ``hotspot_shape``:
            "square" or "circle"; ``hotspot_min_tissue``: the least tissue
            fraction of a candidate window (default 0.5); ``hotspots``: how many
            non-overlapping windows. Windows lie on the tissue mask and are
            ranked by figures per mm^2 of tissue inside (``detection.hotspot``).
        tissue_mpp: microns per pixel of the tissue mask.
        prefetch: tiles read ahead on the background thread (memory bound).
        progress: tqdm bar over tiles (shown only on a terminal); False: never.
        state_every_s: seconds between writes of the resume state.

    Returns:
        The ``SlideResult``: figures in level-0 pixels, tissue area, hotspots,
        counts and the paths of the files written.

    Raises:
        ValueError: an option out of range, ``resume`` without ``out_dir``, an
            unreadable resume state, or a slide with no pixel size (give ``mpp``).
        OSError: the slide cannot be opened or read.

    Tiles without tissue never reach the network. A slide with no tissue
    gives an empty result (count 0, tissue area 0, no hotspot, per_mm2 None),
    not an error. Nucleus detectors get no hotspot, per 10 HPF or Nottingham score.
    """
    hpf10_area_mm2, field_diameter_mm = ten_hpf(hpf10_area_mm2, field_diameter_mm)
    hotspot_options = {
        "min_tissue_fraction": hotspot_min_tissue,
        "shape": hotspot_shape,
        "area_mm2": hotspot_area_mm2,
        "fields": hotspot_fields,
        "hpf10_area_mm2": hpf10_area_mm2,
    }
    _check_options(hotspots, prefetch, hotspot_options)
    if resume and not out_dir:
        raise ValueError("resume needs out_dir: the resume state is kept beside the slide's outputs.")
    start = time.perf_counter()
    with open_slide(path, mpp=mpp) as slide:
        stem = slide.name  # the whole name: a.svs and a.tif must not share files
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
        t0 = time.perf_counter()
        tissue = detect_tissue(slide, tissue_mpp)
        timing = {"tissue_s": time.perf_counter() - t0, "read_s": 0.0, "wait_s": 0.0, "network_s": 0.0, "stitch_s": 0.0}
        plan = plan_tiles(slide, detector.mpp, tile=tile, margin=margin)
        all_tiles, with_tissue = _tiles_on_tissue(plan, tissue)
        state = _resume_state(slide, plan, detector, tissue_mpp, out_dir, stem, resume)
        todo = [t for t in with_tissue if t.index not in state.done]
        resumed = len(with_tissue) - len(todo)
        tiles = {"total": len(all_tiles), "with_tissue": len(with_tissue), "run": len(todo), "resumed": resumed}
        _detect_tiles(detector, slide, plan, todo, state, timing, tiles, prefetch, progress, state_every_s)
        result = _slide_result(path, slide, detector, tissue, state, tiles, timing, hpf10_area_mm2, field_diameter_mm)
        if detector.object_class == "Mitosis":
            result.hotspots = find_hotspots(
                result.positions_um(), tissue=tissue.mask, tissue_mpp=tissue.mpp, k=hotspots, **hotspot_options
            )
        result.seconds = time.perf_counter() - start
        if out_dir:
            result.outputs = write_slide_outputs(result, slide, out_dir, stem)
    return result


def list_slides(path):
    """The slides named by ``path``: a file, a DICOM series folder, or a folder's slides sorted by name.

    In a folder, each slide or image file is a slide, and so is each DICOM
    series (``reader.dicom_series``): the folder's own ``.dcm`` files, and
    each subfolder holding some, count as one slide each, named after their folder.
    """
    if os.path.isdir(path):
        entries = [path] if dicom_series(path) else []
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if (os.path.isfile(full) and is_slide_file(name)) or dicom_series(full):
                entries.append(full)
        if not entries:
            raise ValueError(
                f"no slides or images in folder {path!r} (by suffix: .svs, .tif, .ndpi, .mrxs, .png, ...; "
                "or DICOM series: folders of .dcm files)."
            )
        return entries
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} is neither a slide file nor a folder.")
    return [path]


def _summary_row(result):
    counts = result.counts()

    def fmt(v):
        return "" if v is None else f"{v:.6g}" if isinstance(v, float) else v

    return {
        "slide": result.name,
        "status": "ok",
        "object_class": result.object_class,
        "mpp": fmt(result.mpp),
        "width": result.dimensions[0],
        "height": result.dimensions[1],
        "seconds": fmt(result.seconds),
        "hpf10_area_mm2": fmt(result.hpf10_area_mm2),
        **{
            k: fmt(counts.get(k))
            for k in (
                "count",
                "tissue_area_mm2",
                "per_mm2",
                "hotspot_count",
                "hotspot_tissue_mm2",
                "hotspot_per_10hpf",
                "nottingham",
            )
        },
    }


@dataclasses.dataclass
class SlidesResult:
    rows: list  # summary.csv rows of this run, failed slides included with their reason
    results: list  # SlideResult of the slides that finished
    summary_path: str

    @property
    def failures(self):
        return [r for r in self.rows if r["status"] != "ok"]


class SummaryFile:
    """``summary.csv``, rewritten whole (atomically) as each slide finishes: a run killed later loses no row.

    Rows of slides run earlier into the same folder stay (a slide run again
    gets its row replaced in place), so the file describes every slide whose
    files the folder holds, whichever run wrote them.
    """

    def __init__(self, path):
        self.path = path
        self.rows = {}
        if os.path.isfile(path):
            with open(path, newline="") as fh:
                self.rows = {r["slide"]: r for r in csv.DictReader(fh) if r.get("slide")}

    def put(self, row):
        self.rows[row["slide"]] = row

        def write(temp):
            with open(temp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS, restval="", extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows.values())

        write_atomic(self.path, write)


def predict_slides(detector, inputs, *, out_dir, on_slide=None, **options):
    """``predict_slide`` over a slide or a folder of slides; a slide that fails is listed in summary.csv, not fatal.

    Each slide's files go to ``out_dir`` (see ``predict_slide``), with
    ``summary.csv``: one row per slide, failures with their reason, written
    as each slide finishes (``SummaryFile``). ``on_slide(row)`` is called
    after each slide (the CLI prints).
    """
    files = list_slides(inputs)
    os.makedirs(out_dir, exist_ok=True)
    summary = SummaryFile(os.path.join(out_dir, SUMMARY_FILE))
    rows, results = [], []
    for path in files:
        try:
            result = predict_slide(detector, path, out_dir=out_dir, **options)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a corrupt tile or file must not cost the other slides their run
            slide = os.path.basename(path.rstrip(os.sep))
            rows.append({c: "" for c in SUMMARY_COLUMNS} | {"slide": slide, "status": f"failed: {error_message(err)}"})
        else:
            results.append(result)
            rows.append(_summary_row(result))
        summary.put(rows[-1])
        if on_slide is not None:
            on_slide(rows[-1])
    return SlidesResult(rows=rows, results=results, summary_path=summary.path)
