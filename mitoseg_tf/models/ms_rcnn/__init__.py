"""Mask Scoring R-CNN (Huang et al., CVPR 2019) in Keras 3: ``build_ms_rcnn``."""

from mitoseg_tf.models.ms_rcnn.model import MaskScoringRCNN, build_ms_rcnn

__all__ = ["MaskScoringRCNN", "build_ms_rcnn"]
