"""Input validation inside the graph, so bad sizes fail with a readable message."""

import keras


@keras.saving.register_keras_serializable(package="mitoseg_tf")
class InputSizeCheck(keras.layers.Layer):
    """Identity that rejects spatial sizes not divisible by ``multiple``.

    Models built with ``(None, None, 3)`` inputs only learn the real size when
    called; without this check an odd size fails much later, deep inside a
    concatenation, with a backend stack trace.
    """

    def __init__(self, multiple, model_name="model", **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.model_name = model_name

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        bad = [s for s in (height, width) if s is not None and s % self.multiple]
        if bad:
            raise ValueError(
                f"{self.model_name} takes images whose height and width are multiples of "
                f"{self.multiple}; got {height}x{width}. Pad or crop the image (sliding-window "
                f"prediction does this for you)."
            )
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(multiple=self.multiple, model_name=self.model_name)
        return config
