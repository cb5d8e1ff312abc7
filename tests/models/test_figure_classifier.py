"""The second-stage figure classifier: shape, parameter count, precision, serialization, bad arguments."""

import os

import keras
import numpy as np
import pytest

from mitoseg_tf.models.figure_classifier import (
    build_figure_classifier,
    ensemble_figure_classifiers,
    figure_classifier_arguments,
)


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
        ({"window": 48, "members": 0}, "members must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        build_figure_classifier(**kwargs)


def test_an_ensemble_averages_its_members_probabilities():
    keras.utils.set_random_seed(0)
    members = [build_figure_classifier(window=16, widths=(4, 8), dropout=0.1) for _ in range(3)]
    ensemble = ensemble_figure_classifiers(members)
    x = np.random.default_rng(2).uniform(0, 255, (5, 16, 16, 3)).astype("float32")
    expected = np.mean([m.predict_on_batch(x) for m in members], axis=0)
    assert not np.allclose(members[0].predict_on_batch(x), members[1].predict_on_batch(x))
    np.testing.assert_allclose(ensemble.predict_on_batch(x), expected, rtol=1e-6)
    assert figure_classifier_arguments(members[0]) == {"window": 16, "widths": [4, 8], "dropout": 0.1, "members": 1}
    assert figure_classifier_arguments(ensemble) == {"window": 16, "widths": [4, 8], "dropout": 0.1, "members": 3}
    rebuilt = build_figure_classifier(**figure_classifier_arguments(ensemble))
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in ensemble.weights]


def test_an_ensemble_needs_single_classifiers_of_one_architecture():
    with pytest.raises(ValueError, match="single classifiers of one architecture"):
        ensemble_figure_classifiers(
            [build_figure_classifier(window=16, widths=(4, 8)), build_figure_classifier(window=16, widths=(4, 4))]
        )
    with pytest.raises(ValueError, match="single classifiers of one architecture"):
        ensemble_figure_classifiers([build_figure_classifier(window=16, widths=(4, 8), members=2)])
