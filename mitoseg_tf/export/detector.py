"""A ``Detector`` as one SavedModel that counts: image and pixel size in, the kept figures out.

``export_detector(detector, DIR)`` (``Detector.export``, ``mitoseg export``)
writes the maps of ``export.saved_model`` (``serving_default``,
``serving_float``, ``serving_tiled``, at the detector's pixel threshold and
averaging) plus::

    serving_figures   images uint8 [1, H, W, 3] (RGB 0-255, one image), mpp float32 [] (its microns per pixel)
        centres    float32 [K, 2]  (row, col) of each kept figure's centroid, in the input's pixels
        scores     float32 [K]     its score (classifier probability when the detector rescores, else mean probability)
        areas_um2  float32 [K]     its area in square microns
        count      int32   []      K

Figures are sorted by descending score, as ``Detector.predict`` returns them.
Inside the graph, in the order ``Detector.predict`` applies them: the image is
resampled to the detector's pixel size (as ``inference.resample``: bilinear,
antialiased, rounded back to uint8; skipped within ``MPP_TOLERANCE``), its map
is predicted by sliding window (``serving_tiled``'s function, not a second
copy of the network), thresholded, split into 8-connected components (below),
components under ``min_area_um2`` dropped; with a second stage, a window is cut
at each rounded centroid (mirrored past the border, as
``detection.rescoring.cut_windows``) and scored by the classifier averaged over
the 8 flips / quarter turns (``classify_centres``); figures under the score
threshold are dropped and centroids mapped back to the input's pixels as
``detection.figures.rescale_figure`` does. A deployer with only TensorFlow gets
``mitoseg predict``'s count.

With a second stage the classifier alone is served too, from the same
variables: ``serving_windows`` (``windows`` uint8 [N, W, W, 3] -> ``probability``
[N]), for candidates found some other way. That replaces the separate
``DIR/rescorer`` SavedModel of ``export_figure_classifier``, which would be a
second copy of the same weights, and which this export therefore does not write.

The connected components need no tensorflow-addons: every foreground pixel
starts labelled with its own raster index; each round takes the minimum label
of the 3x3 neighbourhood (within the mask) and then jumps to the label its
label's pixel holds (pointer jumping, so a long blob needs far fewer rounds
than it has pixels along its length), until nothing changes. Each
component ends labelled with its first pixel in raster order, which is the
order ``skimage.measure.label`` numbers components in.
"""

import os
import time

from mitoseg_tf.data.resolution import resample_image, resampled_size
from mitoseg_tf.export.saved_model import CARD_FILE, _reflect, _tf, export, tta_view
from mitoseg_tf.inference.resample import MAX_RESAMPLED_PIXELS, MPP_RANGE, MPP_TOLERANCE
from mitoseg_tf.inference.tta import NUM_TRANSFORMS

MPP_MESSAGE = (
    f"serving_figures: mpp must be {MPP_RANGE[0]:g} to {MPP_RANGE[1]:g} microns per pixel (0.25 at 40x, 0.5 at 20x)"
)

FIGURES_SIGNATURE = "serving_figures"
WINDOWS_SIGNATURE = "serving_windows"
MAP_SIGNATURES = ("serving_default", "serving_float", "serving_tiled")
SCORES = ("mean", "max")


# --- graph pieces (TensorFlow ops; public so the tests can hold them against the NumPy originals) -------------------


def component_roots(mask):
    """int32 (H, W): for each pixel of the bool ``mask`` (H, W) the raster index of the first pixel of its
    8-connected component; ``H * W`` for the background."""
    tf = _tf()
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    background = height * width
    start = tf.where(mask, tf.reshape(tf.range(background), [height, width]), background)

    def neighbourhood_min(labels):
        # A 3x3 minimum is a minimum over rows of a minimum over columns.
        padded = tf.pad(labels, [[1, 1], [1, 1]], constant_values=background)
        rows = tf.minimum(tf.minimum(padded[:-2], padded[1:-1]), padded[2:])
        return tf.minimum(tf.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])

    def step(labels, _):
        pooled = tf.where(mask, neighbourhood_min(labels), background)
        # A foreground pixel's label is a pixel of the same component with a smaller or equal index.
        jumped = tf.gather(tf.reshape(pooled, [-1]), tf.where(mask, pooled, 0))
        updated = tf.where(mask, jumped, background)
        return updated, tf.reduce_any(updated != labels)

    roots, _ = tf.while_loop(lambda labels, changed: changed, step, (start, tf.constant(True)))
    return roots


def label_components(mask):
    """int32 (H, W) labels 1..N of the 8-connected components of ``mask``, 0 outside: ``skimage.measure.label``'s."""
    tf = _tf()
    pixels = tf.where(mask)
    _, component = tf.unique(tf.gather_nd(component_roots(mask), pixels))
    return tf.scatter_nd(pixels, component + 1, tf.shape(mask, out_type=tf.int64))


def component_stats(probability, threshold):
    """Blobs of ``probability`` (H, W) above ``threshold``, in ``skimage.measure.label`` order.

    Returns ``area_px`` int64 (N,), ``centroid`` float64 (N, 2) (row, col;
    regionprops' mean pixel position), ``mean`` and ``max`` float32 (N,) of the
    probability over each blob.
    """
    tf = _tf()
    mask = probability > threshold
    pixels = tf.where(mask)  # raster order, so tf.unique numbers components by their first pixel
    roots, component = tf.unique(tf.gather_nd(component_roots(mask), pixels))
    count = tf.size(roots)
    values = tf.gather_nd(probability, pixels)
    area = tf.math.unsorted_segment_sum(tf.ones_like(component, tf.int64), component, count)
    position = tf.math.unsorted_segment_sum(tf.cast(pixels, tf.float64), component, count)
    mean = tf.math.unsorted_segment_sum(tf.cast(values, tf.float64), component, count) / tf.cast(area, tf.float64)
    return {
        "area_px": area,
        "centroid": position / tf.cast(area, tf.float64)[:, None],
        "mean": tf.cast(mean, tf.float32),
        "max": tf.math.unsorted_segment_max(values, component, count),
    }


def cut_windows_graph(image, centres, size):
    """``detection.rescoring.cut_windows`` in graph ops: (K, size, size, C) windows of ``image`` (H, W, C) at
    (row, col) ``centres`` (K, 2) rounded half to even, mirrored past the border as often as needed.

    Index mirroring (``_reflect``) rather than ``tf.pad(mode="REFLECT")``,
    which refuses pads wider than the image (a window at the edge of a small image).
    """
    tf = _tf()
    centre = tf.cast(tf.round(tf.cast(centres, tf.float64)), tf.int32)
    offsets = tf.range(size) - size // 2
    rows = _reflect(centre[:, :1] + offsets[None], tf.shape(image)[0])
    cols = _reflect(centre[:, 1:] + offsets[None], tf.shape(image)[1])
    grid = [tf.shape(centre)[0], size, size]
    index = tf.stack([tf.broadcast_to(rows[:, :, None], grid), tf.broadcast_to(cols[:, None, :], grid)], axis=-1)
    return tf.gather_nd(image, index)


def classify_windows(classifier, windows):
    """``classify_centres``'s probability (K,) of 0-255 windows (K, W, W, 3): the mean over the 8 views, in one call."""
    tf = _tf()

    def classify():
        x = tf.cast(windows, tf.float32)
        views = tf.concat([tta_view(x, k) for k in range(NUM_TRANSFORMS)], axis=0)
        probability = tf.cast(classifier(views, training=False), tf.float32)[:, 0]
        return tf.reduce_mean(tf.reshape(probability, [NUM_TRANSFORMS, -1]), axis=0)

    # TensorFlow's CPU convolutions fail on an empty batch (an image without candidates).
    return tf.cond(tf.shape(windows)[0] > 0, classify, lambda: tf.zeros([0], tf.float32))


# --- the signature ----------------------------------------------------------------------------------------------------


class _Figures:
    """What ``serving_figures`` needs from a detector, read once in Python so the graph holds constants."""

    def __init__(self, detector):
        s = detector.settings
        self.mpp = detector.mpp
        self.pixel_threshold = float(s.pixel_threshold)
        self.min_area_um2 = float(s.min_area_um2)
        self.score_threshold = float(s.score_threshold)
        self.classifier = detector.classifier
        # "classifier" without a classifier is the map's mean, as Detector.figures_native scores it.
        self.score = "mean" if s.figure_score == "classifier" else s.figure_score

    def signatures(self, module):
        """The tf.functions to save; ``module`` is the map export's (its serving_tiled, its variables)."""
        tf = _tf()
        classifier = self.classifier
        if classifier is not None:
            # The classifier's variables are saved once, with the network's, for both signatures that use it.
            module.classifier_variables = [v.value if hasattr(v, "value") else v for v in classifier.variables]
            window = int(classifier.input_shape[1])

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"),
                tf.TensorSpec([], tf.float32, name="mpp"),
            ]
        )
        def serve_figures(images, mpp):
            # A loaded signature does not enforce a static batch of 1, so the graph checks it.
            checks = [
                tf.debugging.assert_equal(
                    tf.shape(images)[0],
                    1,
                    "serving_figures takes one image at a time: images [1, height, width, 3]; call it once per image",
                ),
                tf.debugging.assert_positive(tf.shape(images)[1:3], "serving_figures: the image is empty"),
                tf.debugging.assert_all_finite(
                    mpp, "serving_figures: mpp must be a finite number of microns per pixel"
                ),
                # The one pixel-size rule (inference.resample.check_mpp), in the graph.
                tf.debugging.assert_greater_equal(mpp, MPP_RANGE[0], MPP_MESSAGE),
                tf.debugging.assert_less_equal(mpp, MPP_RANGE[1], MPP_MESSAGE),
            ]
            with tf.control_dependencies(checks):
                height, width = tf.shape(images)[1], tf.shape(images)[2]
            if self.mpp is None:
                # Training resolution unknown: the network sees the image at its own scale.
                work_mpp, work, work_h, work_w = tf.cast(mpp, tf.float64), images, height, width
            else:
                work_mpp = tf.constant(self.mpp, tf.float64)
                size = resampled_size(tf.stack([height, width]), mpp, self.mpp)
                work_h, work_w = size[0], size[1]
                pixels = tf.cast(work_h, tf.int64) * tf.cast(work_w, tf.int64)
                with tf.control_dependencies(
                    [
                        tf.debugging.assert_less_equal(
                            pixels,
                            tf.constant(MAX_RESAMPLED_PIXELS, tf.int64),
                            f"serving_figures: the image resampled to {self.mpp:g} um/px would exceed "
                            f"{MAX_RESAMPLED_PIXELS} pixels; check mpp",
                        )
                    ]
                ):
                    work = resample_image(images, size)
            probability = module.serve_tiled(work)["probability"][0]
            stats = component_stats(probability, self.pixel_threshold)
            # area * mpp^2 in this order, as extract_figures computes it: the size floor compares the same double.
            area_um2 = tf.cast(stats["area_px"], tf.float64) * (work_mpp * work_mpp)
            big = area_um2 >= self.min_area_um2
            centroid = tf.boolean_mask(stats["centroid"], big)
            area_um2 = tf.boolean_mask(area_um2, big)
            if classifier is not None:
                scores = classify_windows(classifier, cut_windows_graph(work[0], centroid, window))
            else:
                scores = tf.boolean_mask(stats[self.score], big)
            kept = scores >= self.score_threshold
            scores, centroid, area_um2 = (tf.boolean_mask(t, kept) for t in (scores, centroid, area_um2))
            order = tf.argsort(-scores, stable=True)  # Python's sorted(key=-score) is stable too
            factor = tf.cast(
                tf.stack([height / work_h, width / work_w]), tf.float64
            )  # int32 / int32 divides in float64
            centres = (tf.gather(centroid, order) + 0.5) * factor - 0.5
            return {
                "centres": tf.cast(tf.reshape(centres, [-1, 2]), tf.float32),
                "scores": tf.gather(scores, order),
                "areas_um2": tf.cast(tf.gather(area_um2, order), tf.float32),
                "count": tf.size(scores, out_type=tf.int32),
            }

        module.serve_figures = serve_figures
        signatures = {FIGURES_SIGNATURE: serve_figures}
        if classifier is not None:

            @tf.function(input_signature=[tf.TensorSpec([None, window, window, 3], tf.uint8, name="windows")])
            def serve_windows(windows):
                return {"probability": classify_windows(classifier, windows)}

            module.serve_windows = serve_windows
            signatures[WINDOWS_SIGNATURE] = serve_windows
        return signatures


# --- the card and the export ------------------------------------------------------------------------------------------


def settings_in_order(detector):
    """The detector's settings as the steps they are applied in (``DetectionSettings``' own order), JSON-ready."""
    s, rescored = detector.settings, detector.classifier is not None
    resample = (
        f"the image is resampled to {detector.mpp:g} um/px (bilinear, antialiased) unless its pixel size is within "
        f"{MPP_TOLERANCE:.0%} of it; figures are mapped back to the input's pixels"
        if detector.mpp
        else "none: the detector's training resolution is unknown, so the network sees the image at its own scale"
    )
    steps = [
        {"name": "mpp", "value": detector.mpp, "step": resample},
        {"name": "tta", "value": bool(s.tta), "step": "8-fold averaged map" if s.tta else "single-view map"},
        {
            "name": "pixel_threshold",
            "value": float(s.pixel_threshold),
            "step": f"candidate figures are the 8-connected blobs of pixel probability > {s.pixel_threshold:g}",
        },
        {
            "name": "min_area_um2",
            "value": float(s.min_area_um2),
            "step": f"blobs smaller than {s.min_area_um2:g} um^2 are dropped",
        },
    ]
    if rescored:
        window = int(detector.classifier.input_shape[1])
        steps.append(
            {
                "name": "figure_score",
                "value": "classifier",
                "step": f"each blob's score is the figure classifier's probability on a {window}-px window at its "
                "rounded centroid (mirrored past the border), averaged over the 8 flips / quarter turns",
            }
        )
    else:
        score = "mean" if s.figure_score == "classifier" else s.figure_score
        steps.append(
            {"name": "figure_score", "value": score, "step": f"each blob's score is its {score} pixel probability"}
        )
    steps.append(
        {
            "name": "score_threshold",
            "value": float(s.score_threshold),
            "step": f"figures scoring less than {s.score_threshold:.4g} are dropped",
        }
    )
    return steps


def _paper_results(model_name):
    """The zoo card's published numbers, labelled as the paper's (its model, its data), or None."""
    from mitoseg_tf.zoo import get_card

    try:
        entry = get_card(model_name)
    except ValueError:  # a custom network: no paper
        return None
    if not entry.paper_results:
        return None
    return {
        "source": f"reported by the paper ({entry.paper}) for its own model and data; not measured on this detector",
        "numbers": entry.paper_results,
    }


def _metrics(detector):
    """The scores of the settings this detector uses, from its card: the test (which chose nothing) first."""
    card = detector.card or {}
    chosen = (card.get("rescorer") or {}).get("detection") if detector.classifier is not None else card.get("detection")
    if not chosen or not any(k.startswith("validation") for k in chosen):
        return None
    return {
        "source": "measured by mitoseg-tf with these weights and settings (see weights_card)",
        **{k: v for k, v in chosen.items() if k.startswith("test")},
        **{k: v for k, v in chosen.items() if k.startswith("validation")},
        **({"chosen_by": card["chosen_by"]} if card.get("chosen_by") else {}),
    }


def detector_card(detector, *, tile, overlap):
    """Model-card entries of a detector export (merged over ``export.saved_model.build_card``'s)."""
    rescored = detector.classifier is not None
    card = dict(detector.card or {})
    figures = {
        "signature": FIGURES_SIGNATURE,
        "input": {
            "images": "uint8 [1, height, width, 3], RGB 0-255, one image",
            "mpp": "float32 []: microns per pixel of that image",
        },
        "output": {
            "centres": "float32 [K, 2]: (row, col) of each figure's centroid in input pixels (pixel centres "
            "at integers)",
            "scores": "float32 [K]: " + ("figure classifier probability" if rescored else "blob probability"),
            "areas_um2": "float32 [K]: area in square microns",
            "count": "int32 []: K, the figures kept",
        },
        "order": "descending score",
        "sliding_window": {"tile": int(tile), "overlap": float(overlap)},
        "same_as": "mitoseg predict / Detector.predict on the same image and mpp",
    }
    if rescored:
        window = int(detector.classifier.input_shape[1])
        figures["classifier_signature"] = {
            "signature": WINDOWS_SIGNATURE,
            "input": {"windows": f"uint8 [N, {window}, {window}, 3], RGB 0-255, centred on a candidate"},
            "output": {"probability": "float32 [N]: the figure classifier's probability, mean of the 8 views"},
        }
    entries = {
        "detector": {
            "name": detector.name,
            "object_class": detector.object_class,
            "mpp": detector.mpp,
            "rescored": rescored,
            "settings_in_order": settings_in_order(detector),
            "describe": detector.describe(),
            "chosen_by": detector.settings.chosen_by,
        },
        "figures": figures,
        "training_data": card.get("data") or card.get("training_data") or "unknown (not recorded at export)",
        # A run's own metrics.json when the detector's settings carry no validation scores.
        "metrics": _metrics(detector) or card.get("metrics"),
        "source": card.get("weights") or card.get("checkpoint") or "a Keras model given in Python",
        "paper_results": _paper_results(detector.model.name),
        "weights_card": card,
    }
    if card.get("licence"):
        entries["licence"] = card["licence"]
    return entries


def _check_detector(detector):
    import keras

    missing = [
        name for name in ("model", "settings", "classifier", "mpp", "card", "name") if not hasattr(detector, name)
    ]
    if missing or not isinstance(detector.model, keras.Model):
        raise ValueError(f"export_detector takes a mitoseg_tf.detector.Detector; got {type(detector).__name__}.")
    s = detector.settings
    if s.figure_score not in SCORES + ("classifier",):
        raise ValueError(
            f"export_detector: figure_score must be one of {SCORES + ('classifier',)}; got {s.figure_score!r}."
        )
    classifier = detector.classifier
    if classifier is not None:
        shape = tuple(classifier.input_shape)
        square = len(shape) == 4 and shape[1] is not None and shape[1:] == (shape[1], shape[1], 3)
        if not square or tuple(classifier.output_shape) != (None, 1):
            raise ValueError(
                f"export_detector: the second stage must be a window classifier (W, W, 3) -> (1,); got "
                f"{classifier.input_shape} -> {classifier.output_shape}."
            )


def export_detector(detector, out_dir, *, overwrite=False, tile=None, overlap=None, card=None):
    """Write ``detector`` as a SavedModel in ``out_dir`` that serves its maps and its figures (module docstring).

    Args:
        detector: a ``mitoseg_tf.detector.Detector`` (TensorFlow backend).
        out_dir: the SavedModel folder; it must be empty or absent unless ``overwrite``.
        tile, overlap: the sliding window of ``serving_tiled`` and
            ``serving_figures``; default the detector's, which is what makes
            the count equal ``Detector.predict``'s (the blending moves map
            values slightly with the tiling).
        card: extra model-card entries, merged over the derived ones.

    Returns:
        A JSON-ready summary for the CLI: ``out_dir``, ``name``, ``mpp``,
        ``settings`` (the steps in the order they apply), ``describe``,
        ``signatures``, ``card`` (the card file's path), ``seconds``.
    """
    _check_detector(detector)
    out_dir = os.fspath(out_dir)
    if os.path.isfile(out_dir):
        raise ValueError(f"export_detector: {out_dir!r} is a file; give a folder for the SavedModel.")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ValueError(
            f"{out_dir!r} exists and is not empty; pass overwrite=True (--overwrite) or choose another folder."
        )
    tile = detector.tile if tile is None else tile
    overlap = detector.overlap if overlap is None else overlap
    figures = _Figures(detector)

    started = time.perf_counter()
    written = export(
        detector.model,
        out_dir,
        card={**detector_card(detector, tile=tile, overlap=overlap), **(card or {})},
        threshold=detector.settings.pixel_threshold,
        tile=tile,
        overlap=overlap,
        tta=bool(detector.settings.tta),
        extend=lambda model, module: figures.signatures(module),
    )
    seconds = time.perf_counter() - started
    signatures = [*MAP_SIGNATURES, FIGURES_SIGNATURE] + ([WINDOWS_SIGNATURE] if detector.classifier is not None else [])
    return {
        "out_dir": out_dir,
        "name": detector.name,
        "mpp": detector.mpp,
        "settings": written["detector"]["settings_in_order"],
        "describe": written["detector"]["describe"],
        "signatures": signatures,
        "card": os.path.join(out_dir, "assets", CARD_FILE),
        "seconds": round(seconds, 1),
    }
