"""``Detector``: network + resolution + thresholds + optional second stage; image in, figures out."""

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from mitoseg_tf.data.images import read_image
from mitoseg_tf.data.pixel_size import TYPICAL, image_pixel_size
from mitoseg_tf.defaults import (
    DEFAULT_HPF10_AREA_MM2,
    DEFAULT_WINDOW_BATCH_SIZE,
    DEFAULT_WINDOW_OVERLAP,
    DEFAULT_WINDOW_TILE,
)
from mitoseg_tf.detection.counting import count_density, image_area_mm2
from mitoseg_tf.detection.figures import Figure, extract_figures, rescale_figure
from mitoseg_tf.detection.rescoring import rescore_figures
from mitoseg_tf.detector.settings import DetectionSettings
from mitoseg_tf.inference.resample import check_mpp, resize, scale_factors, to_resolution
from mitoseg_tf.inference.runtimes import DEFAULT_RUNTIME, batch_predictor, check_runtime
from mitoseg_tf.inference.sliding_window import check_image, predict_image

if TYPE_CHECKING:  # annotations only: the detector runs on any Keras backend
    import keras

    from mitoseg_tf.slides.predict import SlideResult

DEFAULT_WEIGHTS = "unet/mitosis"
CHECKPOINT_FILE = "best.keras"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What a detector found in one image, in that image's pixels (``mpp`` microns each).

    Attributes:
        figures: the kept figures, highest score first.
        mpp: microns per pixel of the image (not of the detector).
        image_shape: (height, width) of the image in pixels.
        object_class: ``"Mitosis"`` or ``"Nucleus"``.
        settings: the thresholds that kept these figures.
        rescored: whether a second-stage classifier gave the scores.
        probability: (H, W) float32 map at the image's size, when kept.
        mpp_source: where ``mpp`` came from: "mpp" (given), "--mpp", "TIFF tags", "PNG pHYs", ...
    """

    figures: tuple[Figure, ...]
    mpp: float
    image_shape: tuple[int, int]
    object_class: str
    settings: DetectionSettings
    rescored: bool = False
    probability: np.ndarray | None = None
    mpp_source: str = "mpp"

    @property
    def count(self) -> int:
        """The number of kept figures."""
        return len(self.figures)

    @property
    def area_mm2(self) -> float:
        """The image's area in square millimetres."""
        return image_area_mm2(*self.image_shape, self.mpp)

    def positions_um(self):
        """(K, 2) float64 (x, y) of every figure's centroid in microns from the image's top-left corner."""
        rc = np.array([f.centroid for f in self.figures], np.float64).reshape(-1, 2)
        return (rc[:, ::-1] + 0.5) * self.mpp

    def density(self, hpf10_area_mm2: float = DEFAULT_HPF10_AREA_MM2) -> dict[str, float]:
        """Count and count per mm^2; per 10 HPF only for mitoses (a nucleus count per 10 HPF means nothing).

        Args:
            hpf10_area_mm2: the area of 10 high-power fields (default MIDOG's 2 mm^2).

        Returns:
            ``{"count", "area_mm2", "per_mm2"}``, and ``"per_10hpf"`` for mitoses.
        """
        density = count_density(self.count, self.area_mm2, hpf10_area_mm2=hpf10_area_mm2)
        if self.object_class != "Mitosis":
            density.pop("per_10hpf", None)
        return density


class Detector:
    """A segmentation network used as a figure detector at a known resolution.

    Args:
        model: a zoo model (any backend); its primary ``mask`` output is the map.
        mpp: microns per pixel the network was trained at; inputs at another
            pixel size are resampled to it and the figures mapped back. None:
            unknown (a bare checkpoint), the network sees images at their own scale.
        settings: ``DetectionSettings`` (thresholds, size floor, averaging).
        classifier: optional second-stage window classifier that rescores candidates.
        object_class: ``"Mitosis"`` or ``"Nucleus"``: how counts are reported.
        card: facts that travel with the detector (training data, licence, scores).
        name: what ``describe`` and the exported card call it (default the model's name).
        tile, overlap, batch_size: the sliding window (memory, not results).
        runtime: what runs the network: "tensorflow", "xla" or "onnxruntime"
            (``inference.runtimes``; speed, not results).

    Raises:
        ValueError: ``mpp`` is not a plausible pixel size, or ``runtime`` is
            unknown or its package is not installed.
    """

    def __init__(
        self,
        model: "keras.Model",
        *,
        mpp: float | None = None,
        settings: DetectionSettings | None = None,
        classifier: "keras.Model | None" = None,
        object_class: str = "Mitosis",
        card: dict | None = None,
        name: str | None = None,
        tile: int = DEFAULT_WINDOW_TILE,
        overlap: float = DEFAULT_WINDOW_OVERLAP,
        batch_size: int = DEFAULT_WINDOW_BATCH_SIZE,
        runtime: str = DEFAULT_RUNTIME,
    ) -> None:
        self.model = model
        self.mpp = None if mpp is None else check_mpp(mpp, "the detector's mpp")
        self.settings = settings or DetectionSettings()
        self.classifier = classifier
        self.object_class = object_class
        self.card = dict(card or {})
        self.name = name or model.name
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self.runtime = check_runtime(runtime)
        self._predict_batch = None  # built at the first map: a conversion costs tens of seconds

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def from_weights(cls, key: str = DEFAULT_WEIGHTS, *, rescore: bool | None = None, **options: Any) -> "Detector":
        """The detector of shipped weights ``"<model>/<tag>"`` at the settings on its card.

        Args:
            key: ``"<model>/<tag>"`` of weights that ship (``mitoseg weights``).
            rescore: use the second-stage classifier shipped with the weights
                (None: when one ships); its card's settings then replace the map's.
            **options: ``tile``, ``overlap``, ``batch_size`` and any
                ``DetectionSettings`` field to override (None: the card's).

        Returns:
            The detector, at the pixel size the weights were trained at.

        Raises:
            ValueError: no such weights, ``rescore`` for weights without a
                classifier, or an unknown or out-of-range setting.
        """
        from mitoseg_tf.zoo import build
        from mitoseg_tf.zoo.pretrained import load_rescorer
        from mitoseg_tf.zoo.weights_card import weights_card

        card = weights_card(key)
        rescore = card.rescorer is not None if rescore is None else bool(rescore)
        if rescore and card.rescorer is None:
            raise ValueError(f"weights {key} ship without a second-stage figure classifier; drop rescore/--rescore.")
        if card.detection:
            saved, chosen_by = dict(card.detection), f"card of {key}"
            # Checked even when the classifier's block overrides every field: a damaged card is named whichever
            # way it runs, not first when someone passes --no-rescore.
            DetectionSettings.from_dict(saved, chosen_by)
            if rescore:
                saved = {**saved, **card.rescorer.detection}
                chosen_by = f"card of {key}, figure classifier"
        else:
            saved, chosen_by = {"pixel_threshold": card.threshold}, f"card of {key} (pixel threshold only)"
        window, setting_overrides = _split_options(options)
        settings = DetectionSettings.from_dict(saved, chosen_by).replace(**setting_overrides)
        model = build(card.model, weights=card.tag, input_shape=(None, None, 3))
        classifier = load_rescorer(card.model, card.tag) if rescore else None
        return cls(
            model,
            mpp=card.mpp,
            settings=settings,
            classifier=classifier,
            object_class=card.object_class,
            card={"weights": key, **card.to_dict()},
            name=key,
            **window,
        )

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, *, mpp: float | None = None, object_class: str = "Mitosis", **options: Any
    ) -> "Detector":
        """A trained ``.keras`` file at the settings of its run's ``detection.json`` (beside it), when there is one.

        Args:
            path: the ``.keras`` file, e.g. ``runs/NAME/best.keras``.
            mpp: the pixel size it was trained at; None: detection.json's, else
                unknown (no resampling).
            object_class: ``"Mitosis"`` or ``"Nucleus"``.
            **options: ``tile``, ``overlap``, ``batch_size`` and any
                ``DetectionSettings`` field to override.

        Returns:
            The detector; its settings name the run's detection.json, or say
            that defaults apply.

        Raises:
            ValueError: a malformed detection.json, a bad setting or pixel size,
                or a file that is not a zoo checkpoint.
            OSError: the file cannot be read.
        """
        from mitoseg_tf.detection.evaluation import load_detection_settings
        from mitoseg_tf.zoo.checkpoint import load_checkpoint

        run_dir, file = os.path.split(os.path.abspath(path))
        saved = load_detection_settings(run_dir)  # before the model: a bad run file fails at once
        window, setting_overrides = _split_options(options)
        if saved:
            where = os.path.join(run_dir, "detection.json")
            settings = DetectionSettings.from_dict(saved, f"detection.json of {os.path.basename(run_dir)}", where=where)
            if mpp is None and saved.get("mpp") is not None:
                mpp = check_mpp(saved["mpp"], f"{where} (mpp)")
        else:
            settings = DetectionSettings(chosen_by="defaults (the run has no detection.json)")
        settings = settings.replace(**setting_overrides)
        model = load_checkpoint(path)
        # Run folder and file name only: an absolute path would leak the exporting machine's layout.
        card = {**run_card(run_dir), "checkpoint": f"{os.path.basename(run_dir)}/{file}"}
        if saved:
            card["detection"] = saved
        return cls(
            model,
            mpp=mpp,
            settings=settings,
            object_class=object_class,
            card=card,
            name=os.path.basename(run_dir),
            **window,
        )

    @classmethod
    def load(
        cls,
        *,
        checkpoint: str | os.PathLike | None = None,
        weights: str | None = None,
        rescore: bool | None = None,
        **options: Any,
    ) -> "Detector":
        """The detector of a checkpoint or of shipped weights (default: the shipped ``unet/mitosis``).

        What ``mitoseg predict``, ``export`` and ``slide`` build from their
        ``--checkpoint`` / ``--weights`` / ``--rescore`` options.

        Args:
            checkpoint: a ``.keras`` file (``from_checkpoint``).
            weights: shipped ``"<model>/<tag>"`` (``from_weights``).
            rescore: the shipped figure classifier on or off (None: when one ships).
            **options: as ``from_weights`` / ``from_checkpoint`` take; None values
                leave the card's or run's setting.

        Returns:
            The detector.

        Raises:
            ValueError: both ``checkpoint`` and ``weights``, ``rescore`` with a
                checkpoint, or what ``from_weights`` / ``from_checkpoint`` raise.
        """
        if checkpoint and weights:
            raise ValueError("give either a checkpoint (--checkpoint) or shipped weights (--weights), not both.")
        if checkpoint:
            if rescore:
                raise ValueError(
                    "rescoring (--rescore) needs shipped weights with a figure classifier (the default "
                    "unet/mitosis); a checkpoint has none."
                )
            return cls.from_checkpoint(checkpoint, **options)
        return cls.from_weights(weights or DEFAULT_WEIGHTS, rescore=rescore, **options)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, **options: Any) -> "Detector":
        """``from_checkpoint(run_dir/best.keras)``.

        Raises:
            ValueError: ``run_dir`` has no ``best.keras``.
        """
        path = os.path.join(run_dir, CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{run_dir!r} is not a run folder: it has no {CHECKPOINT_FILE}.")
        return cls.from_checkpoint(path, **options)

    def with_settings(self, **overrides: Any) -> "Detector":
        """A detector sharing this one's networks with some settings (or tile/overlap/batch_size) replaced.

        Raises:
            ValueError: an unknown or out-of-range setting.
        """
        window, setting_overrides = _split_options(overrides)
        detector = Detector(
            self.model,
            mpp=self.mpp,
            settings=self.settings.replace(**setting_overrides),
            classifier=self.classifier,
            object_class=self.object_class,
            card=self.card,
            name=self.name,
            **{"tile": self.tile, "overlap": self.overlap, "batch_size": self.batch_size, "runtime": self.runtime}
            | window,
        )
        if detector.runtime == self.runtime:
            detector._predict_batch = self._predict_batch  # the same network: no second conversion
        return detector

    # --- prediction -------------------------------------------------------------------------------

    @property
    def rescored(self) -> bool:
        """Whether a second-stage classifier rescores the candidate figures."""
        return self.classifier is not None

    def describe(self) -> str:
        """One line: name, resolution and the settings in the order they apply (what ``mitoseg predict`` prints)."""
        at = f"{self.mpp:g} um/px" if self.mpp else "the input's own pixel size (training resolution unknown)"
        return f"{self.name} at {at}: {self.settings.describe(self.rescored)}"

    def probability_native(self, image: np.ndarray) -> np.ndarray:
        """Probability map (H, W) float32 of an RGB image already at the detector's resolution."""
        if self._predict_batch is None:
            self._predict_batch = batch_predictor(self.model, self.runtime)
        return predict_image(
            self.model,
            image,
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            tta=self.settings.tta,
            predict_batch=self._predict_batch,
        )

    def figures_native(
        self, image: np.ndarray, mpp: float | None = None, probability: np.ndarray | None = None
    ) -> list[Figure]:
        """Kept figures of an image already at the detector's resolution, in its pixels, highest score first.

        Args:
            image: RGB (H, W, 3), 0-255, at the detector's resolution.
            mpp: that image's pixel size (only needed when the detector's is unknown).
            probability: its map, when already computed.

        Returns:
            The figures that pass every setting.

        Raises:
            ValueError: the detector's pixel size is unknown and ``mpp`` is not a plausible one.
        """
        mpp = self.mpp if self.mpp is not None else check_mpp(mpp)
        if probability is None:
            probability = self.probability_native(image)
        s = self.settings
        figures = extract_figures(
            probability,
            mpp=mpp,
            threshold=s.pixel_threshold,
            min_area_um2=s.min_area_um2,
            score="mean" if s.figure_score == "classifier" else s.figure_score,
        )
        if self.classifier is not None:
            figures = rescore_figures(self.classifier, image, figures)
        return [f for f in figures if f.score >= s.score_threshold]

    def predict(
        self, image: np.ndarray, mpp: float, *, keep_probability: bool = True, mpp_source: str = "mpp"
    ) -> Prediction:
        """Figures of one RGB image (H, W, 3; 0-255) of ``mpp`` microns per pixel, in its pixels.

        The image is resampled to the detector's resolution, predicted there,
        and figures (centroid, outline, box) and the map are brought back.

        Args:
            image: RGB (H, W, 3), uint8 or float 0-255.
            mpp: its microns per pixel; required, since an array states no pixel
                size (``predict_file`` reads it from a file).
            keep_probability: keep the map (at the image's size) in the result.
            mpp_source: where ``mpp`` came from, for the record.

        Returns:
            The ``Prediction``.

        Raises:
            ValueError: not one RGB image, or ``mpp`` missing or implausible.
        """
        image = check_image(image)
        if mpp is None:
            raise ValueError(
                f"an image array states no pixel size: give mpp= (microns per pixel; {TYPICAL}), or call "
                "predict_file(path), which reads it from the file."
            )
        mpp = check_mpp(mpp, mpp_source)
        work_mpp = self.mpp or mpp
        work = to_resolution(image, mpp, work_mpp)
        probability = self.probability_native(work)
        figures = self.figures_native(work, mpp=work_mpp, probability=probability)
        if work.shape[:2] != image.shape[:2]:
            row_factor, col_factor = scale_factors(work.shape[:2], image.shape[:2])
            figures = [rescale_figure(f, row_factor, col_factor) for f in figures]
            probability = resize(probability, image.shape[:2]) if keep_probability else None
        return Prediction(
            figures=tuple(figures),
            mpp=mpp,
            image_shape=tuple(image.shape[:2]),
            object_class=self.object_class,
            settings=self.settings,
            rescored=self.rescored,
            probability=probability if keep_probability else None,
            mpp_source=mpp_source,
        )

    def predict_file(self, path: str | os.PathLike, mpp: float | None = None, **options: Any) -> Prediction:
        """``predict`` of the image file at ``path``.

        Args:
            path: an image file (TIFF, PNG, JPEG, ...).
            mpp: its microns per pixel; None: what the file states
                (``data.pixel_size.image_pixel_size`` says where it is read from;
                the prediction's ``mpp_source`` names it).
            **options: ``predict``'s keywords (``keep_probability``).

        Returns:
            The ``Prediction``.

        Raises:
            ValueError: the file states no pixel size and ``mpp`` is None, or it is not an RGB image.
            OSError: the file cannot be read or decoded.
        """
        image = read_image(path)  # first: an unreadable file is named as such, not as one without a pixel size
        size = image_pixel_size(path, mpp)
        return self.predict(image, size.mpp, mpp_source=size.origin, **options)

    def predict_slide(self, path: str | os.PathLike, **options: Any) -> "SlideResult":
        """Every figure of a whole slide, its tissue and hotspot: ``mitoseg_tf.slides.predict_slide(self, path, ...)``."""
        # Slide readers (OpenSlide, tiffslide) load native libraries: only slide users pay for them.
        from mitoseg_tf.slides import predict_slide

        return predict_slide(self, path, **options)

    def export(self, out_dir: str | os.PathLike, **options: Any) -> dict:
        """A SavedModel of this detector (maps, masks and the figures themselves): ``export.detector.export_detector``."""
        # TensorFlow-only: the detector itself runs on any Keras backend.
        from mitoseg_tf.export.detector import export_detector

        return export_detector(self, out_dir, **options)

    def summary(self) -> dict:
        """JSON-ready facts: resolution, settings in the order they apply, card."""
        return {
            "name": self.name,
            "mpp": self.mpp,
            "object_class": self.object_class,
            "rescored": self.rescored,
            "settings": dataclasses.asdict(self.settings),
            "card": json.loads(json.dumps(self.card, default=str)),
        }


_WINDOW_OPTIONS = ("tile", "overlap", "batch_size", "runtime")
RUN_CONFIG_DATA = ("data", "data_dir", "num_examples", "seed", "crop_size", "epochs", "steps_per_epoch", "batch_size")
RUN_CONFIG_TRAINING = ("model", "base_filters", "loss", "learning_rate", "resolved_precision", "model_args", "version")


def run_card(run_dir):
    """What a run folder's ``config.json`` and ``metrics.json`` say of its model (those present): card entries."""
    card = {}
    config_path, metrics_path = os.path.join(run_dir, "config.json"), os.path.join(run_dir, "metrics.json")
    if os.path.isfile(config_path):
        with open(config_path) as fh:
            config = json.load(fh)
        card["training_data"] = {k: config[k] for k in RUN_CONFIG_DATA if k in config}
        card["training"] = {k: config[k] for k in RUN_CONFIG_TRAINING if k in config}
    if os.path.isfile(metrics_path):
        with open(metrics_path) as fh:
            metrics = json.load(fh)
        card["metrics"] = {k: metrics[k] for k in ("validation", "test") if k in metrics}
    return card


def _split_options(options):
    window = {k: options.pop(k) for k in list(options) if k in _WINDOW_OPTIONS and options[k] is not None}
    return window, options
