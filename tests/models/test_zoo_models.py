"""The shared test every registered zoo model passes (the smp pattern).

New networks join automatically: the class is parameterised over
``list_models()`` and builds each at its card's ``tiny`` size.
"""

import os

import keras
import numpy as np
import pytest

from mitoseg_tf.export import network_stride
from mitoseg_tf.training import compile_model, output_roles
from mitoseg_tf.zoo import build, get_card, list_models

MODELS = list_models()


def tiny(name, **overrides):
    return build(name, **{**get_card(name).tiny, **overrides})


def fixed_batch(model, seed=0, batch=2):
    """A batch the model can fit: a bright square marks the 'mitosis' class."""
    height, width = model.input_shape[1:3]
    height, width = height or 32, width or 32
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
    masks = np.zeros((batch, height, width, 1), "int32")
    masks[:, 8:16, 8:16] = 1
    images[masks[..., 0] == 1] = 20.0
    roles = output_roles(model)
    if len(roles) == 1:
        return images, masks
    targets = {
        n: (masks.reshape(batch, -1).max(axis=1, keepdims=True).astype("float32") if r == "classification" else masks)
        for n, r in roles.items()
    }
    return images, targets


def primary(outputs, model):
    if isinstance(outputs, dict):
        return outputs["mask"]
    if isinstance(outputs, (list, tuple)):
        return outputs[[t._keras_history.operation.name for t in model.outputs].index("mask")]
    return outputs


@pytest.mark.parametrize("name", MODELS)
class TestZooModel:
    def test_builds_with_float32_mask_output(self, name):
        model = tiny(name)
        images, _ = fixed_batch(model)
        out = primary(model(images, training=False), model)
        assert tuple(out.shape[:3]) == images.shape[:3]
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert model.name == name
        assert len(model.inputs) == 1

    def test_layer_names_are_deterministic(self, name):
        first = [layer.name for layer in tiny(name).layers]
        second = [layer.name for layer in tiny(name).layers]
        assert first == second
        assert len(set(first)) == len(first)

    def test_keras_file_round_trip_gives_identical_outputs(self, name, tmp_path):
        model = tiny(name)
        images, _ = fixed_batch(model)
        path = os.path.join(tmp_path, f"{name}.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        np.testing.assert_array_equal(
            np.asarray(primary(model.predict_on_batch(images), model)),
            np.asarray(primary(restored.predict_on_batch(images), restored)),
        )
        assert [l.name for l in restored.layers] == [l.name for l in model.layers]

    def test_any_input_size_and_clear_error_for_bad_sizes(self, name):
        model = tiny(name, input_shape=(None, None, 3))
        # Sizes in units of the network's stride (16 for the tiny U-Nets: 64x48 fits, 40x36 does not).
        m = network_stride(model)
        ok = primary(model(np.zeros((1, 4 * m, 3 * m, 3), "float32")), model)
        assert tuple(ok.shape[1:3]) == (4 * m, 3 * m)
        with pytest.raises(ValueError, match="multiples of"):
            model(np.zeros((1, 2 * m + m // 2, 2 * m + m // 4, 3), "float32"))
        with pytest.raises(ValueError, match="input_shape"):
            tiny(name, input_shape=(32, 32))
        with pytest.raises(ValueError, match="multiple"):
            tiny(name, input_shape=(30, 32, 3))


# Every model, the switch-pair ablations included: the README promises a lowered loss for each, and
# the three pairs cost about 8 s together (eager steps, 2 cores), too little to leave a claim untested.
@pytest.mark.parametrize("name", MODELS)
class TestZooModelTraining:
    def test_one_training_step_lowers_the_loss(self, name):
        keras.utils.set_random_seed(0)
        model = compile_model(tiny(name), optimizer=keras.optimizers.Adam(1e-2), metrics=None)
        # Eager: six steps run faster than tracing one (10-20 s a model on 2 cores). The traced
        # step is what the fit tests run (CLI and helper runs, deep supervision, the detector's
        # overfit, Res-UNet at 64 pixels).
        model.run_eagerly = True
        images, targets = fixed_batch(model)
        losses = [float(np.ravel(model.train_on_batch(images, targets))[0]) for _ in range(6)]
        assert np.isfinite(losses).all()
        assert losses[-1] < losses[0], losses

    def test_mixed_bfloat16_keeps_float32_outputs(self, name):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = tiny(name)
        images, targets = fixed_batch(model)
        for out in keras.tree.flatten(model(images, training=False)):
            assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert any(l.compute_dtype == "bfloat16" for l in model.layers if l.weights)
        # Eager for the same reason (tracing one bfloat16 step: 15-25 s a model).
        compile_model(model, metrics=None).run_eagerly = True
        loss = float(np.ravel(model.train_on_batch(images, targets))[0])
        assert np.isfinite(loss)
