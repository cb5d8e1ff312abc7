"""Whole-image inference: sliding window with Gaussian blending and optional 8-fold TTA.

>>> from mitoseg_tf.inference import predict_image
>>> probability = predict_image(model, image, tile=512, overlap=0.25, batch_size=4, tta=False)
"""

from mitoseg_tf.inference.sliding_window import predict_image, probability_fn, stitch
from mitoseg_tf.inference.tiling import TilePlan, plan_tiles

__all__ = ["TilePlan", "plan_tiles", "predict_image", "probability_fn", "stitch"]
