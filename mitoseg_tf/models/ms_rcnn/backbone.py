"""Backbones (ResNet-50 from ``keras.applications`` or a small ResNet-style stack) and the FPN."""

import keras

RESNET50_STAGES = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="mitoseg")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0-255 -> BGR minus the ImageNet mean: what ``keras.applications`` ResNet-50 weights expect."""

    def call(self, x):
        x = keras.ops.flip(x, axis=-1)
        return x - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=x.dtype)


def resnet50_backbone(input_shape, weights=None, frozen_bn=True):
    """``keras.applications.ResNet50`` returning C2..C5 (strides 4..32) as a nested model ``backbone``.

    ``weights``: None (random init) or the path of Keras' ImageNet ``*_notop.h5``
    file. ``frozen_bn``: BatchNorm layers run in inference mode and are not
    trained (the official recipe, meant for pretrained weights).
    """
    base = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=input_shape)
    model = keras.Model(base.input, [base.get_layer(n).output for n in RESNET50_STAGES], name="backbone")
    if frozen_bn:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def small_backbone(input_shape, width=16):
    """A small ResNet-style stack for tests and quick runs: C2..C5 at strides 4..32.

    Stem conv3x3/2, then per stage a basic residual block whose first conv has
    stride 2 (widths w, 2w, 4w, 4w), GroupNorm (batch-size independent).
    """
    inputs = keras.Input(input_shape)

    def norm(x, name):
        return keras.layers.GroupNormalization(groups=min(4, x.shape[-1]), name=name)(x)

    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.ReLU(name="stem_relu")(norm(x, "stem_norm"))
    outputs = []
    for stage, filters in enumerate((width, 2 * width, 4 * width, 4 * width), start=2):
        p = f"c{stage}"
        y = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"{p}_conv1")(x)
        y = keras.layers.ReLU(name=f"{p}_relu1")(norm(y, f"{p}_norm1"))
        y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{p}_conv2")(y)
        y = norm(y, f"{p}_norm2")
        shortcut = keras.layers.Conv2D(filters, 1, strides=2, use_bias=False, name=f"{p}_shortcut")(x)
        x = keras.layers.ReLU(name=f"{p}_out")(keras.layers.Add(name=f"{p}_add")([y, shortcut]))
        outputs.append(x)
    return keras.Model(inputs, outputs, name="backbone")


def fpn_layers(channels):
    """The FPN's layers by name: laterals 1x1 and outputs 3x3 for P2..P5, nearest x2 top-down, P6 pool."""
    layers = {}
    for level in range(2, 6):
        layers[f"fpn_lateral{level}"] = keras.layers.Conv2D(channels, 1, name=f"fpn_lateral{level}")
        layers[f"fpn_output{level}"] = keras.layers.Conv2D(channels, 3, padding="same", name=f"fpn_output{level}")
    for level in range(2, 5):
        layers[f"fpn_up{level}"] = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_up{level}")
        layers[f"fpn_add{level}"] = keras.layers.Add(name=f"fpn_add{level}")
    layers["fpn_p6"] = keras.layers.MaxPooling2D(1, strides=2, name="fpn_p6")
    return layers


def fpn(stages, layers):
    """C2..C5 -> P2..P6 (P6 = stride-2 subsampling of P5, for the RPN only)."""
    top = layers["fpn_lateral5"](stages[3])
    merged = {5: top}
    for level in (4, 3, 2):
        lateral = layers[f"fpn_lateral{level}"](stages[level - 2])
        top = layers[f"fpn_add{level}"]([lateral, layers[f"fpn_up{level}"](top)])
        merged[level] = top
    outputs = [layers[f"fpn_output{level}"](merged[level]) for level in range(2, 6)]
    return outputs + [layers["fpn_p6"](outputs[-1])]
