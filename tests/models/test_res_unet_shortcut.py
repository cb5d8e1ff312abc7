"""Res-UNet's strided projection shortcut: same numbers as a strided 1x1 conv, without the op.

TensorFlow 2.21's oneDNN kernels corrupt memory when training a strided 1x1
convolution (seen at 64x64 with 4 channels), so the zoo computes it as
subsample + 1x1 conv.
"""

import subprocess
import sys

import keras
import numpy as np

from mitoseg_tf.zoo import build


def test_no_strided_pointwise_conv_in_res_unet():
    model = build("res_unet", base_filters=4, input_shape=(64, 64, 3))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            assert tuple(layer.strides) == (1, 1), layer.name


def test_subsampled_shortcut_equals_strided_pointwise_conv():
    model = build("res_unet", base_filters=4, input_shape=(64, 64, 3))
    conv = model.get_layer("enc2_shortcut_conv")
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 4)).astype("float32")
    strided = keras.layers.Conv2D(conv.filters, 1, strides=2, padding="same", use_bias=conv.use_bias)
    strided.build(x.shape)
    strided.set_weights(conv.get_weights())
    subsampled = conv(model.get_layer("enc2_shortcut_subsample")(x))
    np.testing.assert_array_equal(np.asarray(strided(x)), np.asarray(subsampled))


def test_res_unet_trains_at_64_pixels_without_crashing():
    script = (
        "import numpy as np; from mitoseg_tf.zoo import build; from mitoseg_tf.training import compile_model;"
        "m = compile_model(build('res_unet', base_filters=4, input_shape=(64, 64, 3)), metrics=None);"
        "x = np.random.rand(2, 64, 64, 3).astype('float32') * 255; y = np.zeros((2, 64, 64, 1), 'int32');"
        "print('LOSS', m.train_on_batch(x, y), m.train_on_batch(x, y))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "LOSS" in proc.stdout, proc.stderr[-2000:]
