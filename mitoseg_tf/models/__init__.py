"""Network builders: plain functions returning functional ``keras.Model``s.

The zoo (``mitoseg_tf.zoo``) registers them by name; this package does not
know about the registry.
"""

from mitoseg_tf.models.figure_classifier import build_figure_classifier
from mitoseg_tf.models.ms_rcnn import build_ms_rcnn
from mitoseg_tf.models.res_unet import build_res_unet
from mitoseg_tf.models.unet import build_unet
from mitoseg_tf.models.unet_3plus import build_unet_3plus
from mitoseg_tf.models.unet_plus_plus import build_unet_plus_plus, transfer_weights

__all__ = [
    "build_figure_classifier",
    "build_ms_rcnn",
    "build_res_unet",
    "build_unet",
    "build_unet_3plus",
    "build_unet_plus_plus",
    "transfer_weights",
]
