"""The deployable detector: a network, its resolution, its thresholds and an optional second stage, as one object.

    >>> from mitoseg_tf.detector import Detector
    >>> detector = Detector.from_weights("unet/mitosis")
    >>> result = detector.predict(image_uint8, mpp=0.2456)
    >>> result.count, result.figures[0].xy, result.positions_um()[0]

``mitoseg predict``, ``mitoseg export`` and ``mitoseg slide`` parse their
arguments, build a ``Detector`` and call it; Python users call the same.
"""

from mitoseg_tf.detector.detector import Detector, Prediction
from mitoseg_tf.detector.settings import DetectionSettings

__all__ = ["DetectionSettings", "Detector", "Prediction"]
