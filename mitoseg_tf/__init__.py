"""mitoseg-tf: a Keras 3 model zoo for mitotic-figure segmentation.

Importing the package imports neither TensorFlow nor Keras; the subpackages
pull in what they need (the zoo, layers, losses and metrics only need Keras on
any backend). It does install ``mitoseg_tf._quiet``, so TensorFlow, when something
imports it, starts without its start-up chatter (its ERROR lines still show).
"""

from mitoseg_tf import _quiet  # noqa: F401

__version__ = "0.1.0"
