"""Deployment formats: ``export(model, out_dir)`` writes a SavedModel that serves whole images.

>>> from mitoseg_tf.export import export
>>> export(model, "exported/mcsa_unet")        # then tf.saved_model.load(...) anywhere
>>> export_detector(detector, "exported/mitosis")  # maps plus serving_figures (Detector.export)
"""

from mitoseg_tf.export.detector import export_detector
from mitoseg_tf.export.figure_classifier import export_figure_classifier
from mitoseg_tf.export.saved_model import CARD_FILE, export, network_stride

__all__ = ["CARD_FILE", "export", "export_detector", "export_figure_classifier", "network_stride"]
