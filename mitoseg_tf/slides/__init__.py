"""Whole-slide inference: read a slide, find its tissue, run a detector tile by tile, count and write.

    >>> from mitoseg_tf.detector import Detector
    >>> result = Detector.from_weights("unet/mitosis").predict_slide("case.svs", out_dir="out")
    >>> result.count, result.tissue_area_mm2, result.hotspot.per_10hpf, result.hotspot.nottingham

The modules here import no TensorFlow or Keras themselves: tiles are
resampled with Keras only when the slide's pixel size differs from the
detector's, and the detector brings its own backend.
"""

from mitoseg_tf.slides.predict import SlideResult, SlidesResult, list_slides, predict_slide, predict_slides
from mitoseg_tf.slides.reader import Slide, open_slide
from mitoseg_tf.slides.tissue import TissueMask, detect_tissue

__all__ = [
    "Slide",
    "SlideResult",
    "SlidesResult",
    "TissueMask",
    "detect_tissue",
    "list_slides",
    "open_slide",
    "predict_slide",
    "predict_slides",
]
