"""Output layers of multi-head networks (UNet++ map averaging, UNet 3+ tile gate)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class MapAverage(keras.layers.Layer):
    """Mean of several same-shaped maps, recording the activation those maps went through.

    ``activation`` is not applied: it documents what the output is, so code
    that asks an output layer for its ``activation`` (``output_is_logits``)
    learns that an average of softmax maps is a probability map, not logits.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation

    def call(self, inputs):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total / float(len(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class TileGate(keras.layers.Layer):
    """The CGM gate: zero the foreground of tiles the classifier rejects (inference only).

    Called on ``[maps, tile_probability]`` with maps (B, H, W, C) after their
    activation and the probability (B, 1). At inference a tile is kept when
    its probability is >= ``threshold``; a rejected tile's map becomes
    background-only: zeros for a sigmoid map (C = 1), the one-hot background
    distribution [1, 0, ...] for a softmax map. In training the maps pass
    through unchanged.

    ``activation`` is the activation the maps already went through; it is
    recorded (not applied) so that ``output_is_logits`` reads the gated
    output as probabilities.

    Example:
        >>> gate = TileGate(threshold=0.5, activation="softmax")
        >>> maps = keras.ops.full((2, 4, 4, 2), 0.5)
        >>> gated = gate([maps, keras.ops.convert_to_tensor([[0.9], [0.1]])])
        >>> # tile 0 unchanged, tile 1 -> [1, 0] everywhere
    """

    def __init__(self, threshold=0.5, activation="softmax", **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}.")
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(
                f"TileGate gates probability maps (softmax or sigmoid outputs); got activation={activation!r}."
            )
        self.threshold = float(threshold)
        self.activation = activation

    def call(self, inputs, training=None):
        maps, probability = inputs
        if training:
            return maps
        keep = ops.cast(ops.greater_equal(probability, self.threshold), maps.dtype)
        keep = ops.reshape(keep, (-1, 1, 1, 1))
        channels = maps.shape[-1]
        if channels == 1:
            return maps * keep
        background = ops.one_hot(ops.zeros_like(maps[..., 0], dtype="int32"), channels, dtype=maps.dtype)
        # keep is exactly 0 or 1, so an accepted tile's map is returned bit for bit.
        return maps * keep + background * (1.0 - keep)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(threshold=self.threshold, activation=self.activation)
        return config
