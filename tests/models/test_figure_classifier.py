"""The second-stage figure classifier: shape, parameter count, precision, serialization, bad arguments."""

import os

import keras
import numpy as np
import pytest

from mitoseg_tf.models.figure_classifier import build_figure_classifier


def test_output_is_one_float32_probability_per_window():
    model = build_figure_classifier(window=48)
    x = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(model(x, training=False))
    assert out.shape == (3, 1) and out.dtype == np.float32 and ((out > 0) & (out < 1)).all()
    assert model.name == "figure_classifier" and [layer.name for layer in model.layers][:2] == ["window", "rescale"]


def test_parameter_count_matches_the_hand_count():
    # 3x3 convs 3->32->32, 32->64->64, 64->128->128 (weights + biases), then 128->1
    convs = [(3, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)]
    expected = sum(9 * a * b + b for a, b in convs) + 128 + 1
    assert expected == 287_137 and build_figure_classifier().count_params() == expected


def test_output_stays_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_figure_classifier(window=16, widths=(4, 8))
        out = model(np.zeros((1, 16, 16, 3), "float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert model.get_layer("conv0a").compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = build_figure_classifier(window=16, widths=(4, 8), dropout=0.1)
    path = os.path.join(tmp_path, "c.keras")
    model.save(path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(keras.saving.load_model(path).predict_on_batch(x), model.predict_on_batch(x))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 44}, "window must be a positive multiple of 8"),
        ({"window": 48, "widths": ()}, "widths must be positive integers"),
        ({"window": 48, "widths": (8, -1)}, "widths must be positive integers"),
        ({"window": 48, "dropout": 1.0}, "dropout must be in [0, 1)"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        build_figure_classifier(**kwargs)
