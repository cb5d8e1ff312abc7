"""Batch normalisation used by every zoo block.

One class so that speed work on normalisation (see benchmarks/) lands in every
network at once. Defaults follow the PyTorch reference implementations of the
zoo's networks: momentum 0.9 (torch's 0.1) and epsilon 1e-5.
"""

import keras


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the reference implementations' defaults."""

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)
