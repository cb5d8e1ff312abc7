"""Network builders: plain functions returning functional ``keras.Model``s.

The zoo (``mitoseg_tf.zoo``) registers them by name; this package does not
know about the registry.
"""

from mitoseg_tf.models.unet import build_unet

__all__ = ["build_unet"]
