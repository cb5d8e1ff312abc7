"""The zoo (layers, models, registry, losses, metrics, compile) must run without TensorFlow.

Runs in a subprocess on the JAX backend with ``import tensorflow`` made to fail,
so any TensorFlow import hiding in the model code breaks this test. Every network
of the paper's Table 2 runs forward; only mcsa_unet and unet_3plus take a training
step (see SCRIPT). The U-Net ablations (unet_ca, unet_sa_res, ...) are left out:
each runs a subset of mcsa_unet's layers, which has every switch on.
"""

import jax_without_tensorflow

SCRIPT = """
    import json, sys

    import keras
    import numpy as np
    from mitoseg_tf.zoo import build, get_card, list_models
    from mitoseg_tf.training import compile_model, evaluate, output_roles
    from mitoseg_tf import losses, metrics, layers

    assert keras.backend.backend() == "jax"
    report = {}
    # A training step for one single-output network with every custom layer (mcsa_unet: CBAM,
    # CSA, the zoo BatchNorm with its own gradient) and one multi-output network (unet_3plus:
    # deep supervision + the classification head); a forward pass for every other network.
    # Compiling a jitted JAX train step costs ~10 s a model on 2 cores (compile_model jits on JAX), and the forward
    # pass already runs every op of a network on JAX.
    TRAINED = ("mcsa_unet", "unet_3plus")
    for name in [n for n in list_models() if "table2" in get_card(n).tags]:
        card = get_card(name)
        model = build(name, **card.tiny)
        if name not in TRAINED:
            height, width = (model.input_shape[1] or 32), (model.input_shape[2] or 32)
            x = np.random.default_rng(0).uniform(0, 255, (2, height, width, 3)).astype("float32")
            outputs = model.predict_on_batch(x)  # one jitted call: op-by-op dispatch of the detector costs ~50 s
            first = outputs[list(outputs)[0]] if isinstance(outputs, dict) else outputs
            report[name] = [None, float(np.mean(np.asarray(first)))]
            continue
        height, width = (model.input_shape[1] or 32), (model.input_shape[2] or 32)
        x = np.random.default_rng(0).uniform(0, 255, (2, height, width, 3)).astype("float32")
        mask = np.zeros((2, height, width, 1), "int32"); mask[:, 4:12, 4:12] = 1
        roles = output_roles(model)
        y = mask if len(roles) == 1 else {
            n: (mask.reshape(2, -1).max(1, keepdims=True).astype("float32") if r == "classification" else mask)
            for n, r in roles.items()
        }
        compile_model(model)
        assert model.jit_compile, name  # uncompiled, Keras' JAX trainer runs the step op by op (~20x slower)
        loss = float(np.ravel(model.train_on_batch(x, y))[0])
        scores = evaluate(model, [(x, y)])
        report[name] = [loss, scores["model"]["pooled"]["mean_dice"]]
    report["tensorflow_loaded"] = "tensorflow" in sys.modules
    print("REPORT" + json.dumps(report))
    """


def test_every_table2_network_runs_and_two_train_on_jax_without_tensorflow():
    jax_without_tensorflow.need("jax")  # declared in the test extra; only absent outside `pip install -e .[test]`
    report = jax_without_tensorflow.run(SCRIPT)
    assert report.pop("tensorflow_loaded") is False
    from mitoseg_tf.zoo import get_card, list_models

    assert sorted(report) == sorted(n for n in list_models() if "table2" in get_card(n).tags)
    assert len(report) == 6
    trained = [name for name, (loss, _) in report.items() if loss is not None]
    assert sorted(trained) == ["mcsa_unet", "unet_3plus"]
    for name, (loss, value) in report.items():
        if loss is None:  # forward pass only: a finite output
            assert value == value, name
            continue
        assert loss == loss and loss > 0, name
        assert 0.0 <= value <= 1.0, name
