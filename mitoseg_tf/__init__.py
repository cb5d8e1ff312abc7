"""mitoseg-tf: a Keras 3 model zoo for mitotic-figure segmentation.

Importing the package imports neither TensorFlow nor Keras; the subpackages
pull in what they need (the zoo, layers, losses and metrics only need Keras on
any backend).
"""

__version__ = "0.1.0"
