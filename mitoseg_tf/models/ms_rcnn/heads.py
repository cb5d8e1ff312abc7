"""The R-CNN heads as layers on RoI features ``(B, R, S, S, C)``.

Each folds the RoI axis into the batch for its convolutions and unfolds it
again, so the functional graph sees fixed-size ``(B, R, ...)`` tensors.
"""

import keras
from keras import ops


def _fold(x):
    return ops.reshape(x, (-1, *x.shape[2:]))


def _unfold(x, rois):
    return ops.reshape(x, (-1, rois, *x.shape[1:]))


@keras.saving.register_keras_serializable(package="mitoseg")
class BoxHead(keras.layers.Layer):
    """7x7 RoI features -> FC -> FC -> class logits ``(B, R, K+1)`` and class-specific deltas ``(B, R, 4(K+1))``."""

    def __init__(self, num_classes, fc_dim=1024, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.fc_dim = int(fc_dim)
        self.fc1 = keras.layers.Dense(self.fc_dim, activation="relu", dtype=self.dtype_policy, name="fc1")
        self.fc2 = keras.layers.Dense(self.fc_dim, activation="relu", dtype=self.dtype_policy, name="fc2")
        self.cls = keras.layers.Dense(self.num_classes, dtype=self.dtype_policy, name="class_logits")
        self.box = keras.layers.Dense(
            4 * self.num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            dtype=self.dtype_policy,
            name="box_deltas",
        )

    def build(self, input_shape):
        flat = input_shape[2] * input_shape[3] * input_shape[4]
        self.fc1.build((None, None, flat))
        self.fc2.build((None, None, self.fc_dim))
        self.cls.build((None, None, self.fc_dim))
        self.box.build((None, None, self.fc_dim))

    def call(self, x):
        x = ops.reshape(x, (-1, x.shape[1], x.shape[2] * x.shape[3] * x.shape[4]))
        x = self.fc2(self.fc1(x))
        return self.cls(x), self.box(x)

    def compute_output_spec(self, x):
        b, r = x.shape[:2]
        dtype = self.compute_dtype
        return (
            keras.KerasTensor((b, r, self.num_classes), dtype=dtype),
            keras.KerasTensor((b, r, 4 * self.num_classes), dtype=dtype),
        )

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "fc_dim": self.fc_dim}


@keras.saving.register_keras_serializable(package="mitoseg")
class MaskHead(keras.layers.Layer):
    """14x14 RoI features -> ``num_convs`` x conv3x3 + ReLU -> 2x2 up-conv -> 1x1: logits ``(B, R, 28, 28, K+1)``."""

    def __init__(self, num_classes, conv_dim=256, num_convs=4, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.conv_dim = int(conv_dim)
        self.num_convs = int(num_convs)
        policy = self.dtype_policy
        self.convs = [
            keras.layers.Conv2D(self.conv_dim, 3, padding="same", activation="relu", dtype=policy, name=f"conv{i + 1}")
            for i in range(self.num_convs)
        ]
        self.up = keras.layers.Conv2DTranspose(self.conv_dim, 2, strides=2, activation="relu", dtype=policy, name="up")
        self.logits = keras.layers.Conv2D(self.num_classes, 1, dtype=policy, name="logits")

    def build(self, input_shape):
        shape = (None, *input_shape[2:])
        for conv in self.convs:
            conv.build(shape)
            shape = (None, shape[1], shape[2], self.conv_dim)
        self.up.build(shape)
        self.logits.build((None, 2 * shape[1], 2 * shape[2], self.conv_dim))

    def call(self, x):
        rois = x.shape[1]
        y = _fold(x)
        for conv in self.convs:
            y = conv(y)
        return _unfold(self.logits(self.up(y)), rois)

    def compute_output_spec(self, x):
        b, r, s = x.shape[:3]
        return keras.KerasTensor((b, r, 2 * s, 2 * s, self.num_classes), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, conv_dim=self.conv_dim, num_convs=self.num_convs)
        return config


@keras.saving.register_keras_serializable(package="mitoseg")
class MaskIoUHead(keras.layers.Layer):
    """``[RoI features (B, R, 14, 14, C), mask (B, R, 28, 28)]`` -> predicted mask IoU per class ``(B, R, K+1)``.

    The mask (a probability map of the class in question) is max-pooled to
    14x14 and concatenated to the features: 3 x conv3x3 + ReLU, a stride-2
    conv3x3 + ReLU, FC, FC, FC(K+1).
    """

    def __init__(self, num_classes, conv_dim=256, fc_dim=1024, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.conv_dim = int(conv_dim)
        self.fc_dim = int(fc_dim)
        policy = self.dtype_policy
        # Three stride-1 convs, then a stride-2 one (14x14 -> 7x7).
        self.convs = [
            keras.layers.Conv2D(
                self.conv_dim,
                3,
                strides=2 if i == 3 else 1,
                padding="same",
                activation="relu",
                dtype=policy,
                name=f"conv{i + 1}",
            )
            for i in range(4)
        ]
        self.fc1 = keras.layers.Dense(self.fc_dim, activation="relu", dtype=policy, name="fc1")
        self.fc2 = keras.layers.Dense(self.fc_dim, activation="relu", dtype=policy, name="fc2")
        self.out = keras.layers.Dense(self.num_classes, dtype=policy, name="maskiou")

    def build(self, input_shapes):
        features, _ = input_shapes
        size = features[2]
        shape = (None, size, size, features[4] + 1)
        for conv in self.convs:
            conv.build(shape)
            shape = (None, shape[1], shape[2], self.conv_dim)
        half = (size + 1) // 2
        self.fc1.build((None, half * half * self.conv_dim))
        self.fc2.build((None, self.fc_dim))
        self.out.build((None, self.fc_dim))

    def call(self, inputs):
        features, mask = inputs
        rois = features.shape[1]
        mask = ops.cast(_fold(mask)[..., None], features.dtype)
        pooled = ops.max_pool(mask, 2, 2, "valid")
        y = ops.concatenate([_fold(features), pooled], axis=-1)
        for conv in self.convs:
            y = conv(y)
        y = ops.reshape(y, (-1, y.shape[1] * y.shape[2] * y.shape[3]))
        y = self.out(self.fc2(self.fc1(y)))
        return ops.reshape(y, (-1, rois, self.num_classes))

    def compute_output_spec(self, inputs):
        features, _ = inputs
        return keras.KerasTensor((features.shape[0], features.shape[1], self.num_classes), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, conv_dim=self.conv_dim, fc_dim=self.fc_dim)
        return config
