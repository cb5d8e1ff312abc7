"""SavedModel export: every registered model, loaded by plain TensorFlow in another process.

One module fixture exports every model at its tiny size and runs all of them
in a single subprocess (TensorFlow's import and the exports dominate the
cost); the tests then compare what that process saw with the Keras models.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import time_limits

from mitoseg_tf.export import CARD_FILE, export, network_stride
from mitoseg_tf.zoo import build, get_card, list_models

# One export per distinct network (~6 s each): the paper's Table 2 set. The U-Net ablations left
# out run a subset of mcsa_unet's layers (it has every switch on).
MODELS = [name for name in list_models() if "table2" in get_card(name).tags]
# Height x width: one that needs no padding, odd ones, and one far smaller than the stride
# (the reflection has to repeat to fill the pad).
SIZES = [(32, 48), (37, 50), (21, 33), (5, 7)]
BATCH = 2
FLOAT32_BOUND = 1e-5
# bfloat16 keeps 8 bits of mantissa: a different fusion or op order in the exported graph may
# move an activation by a few bf16 ulps (~0.4 % each). Measured here: 0.0 (same CPU kernels).
MIXED_BFLOAT16_BOUND = 1e-2
MIXED = "mcsa_unet@mixed_bfloat16"
# Export keys -> (zoo name, dtype policy, build overrides): every registered model at float32, plus
# mixed precision and the head variants the zoo does not register (logits, one sigmoid channel).
VARIANTS = {
    MIXED: ("mcsa_unet", "mixed_bfloat16", {}),
    "unet@logits": ("unet", "float32", {"output_activation": None}),
    "unet@sigmoid": ("unet", "float32", {"output_activation": "sigmoid", "num_classes": 1}),
}
JOBS = {**{name: (name, "float32", {}) for name in MODELS}, **VARIANTS}

LOADER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf

    root, inputs_path, out_path = sys.argv[1:4]
    inputs = np.load(inputs_path)
    results, cards = {}, {}
    for name in sorted(os.listdir(root)):
        loaded = tf.saved_model.load(os.path.join(root, name))
        serve_uint8 = loaded.signatures["serving_default"]
        serve_float = loaded.signatures["serving_float"]
        for key in inputs.files:
            images = inputs[key]
            from_uint8 = serve_uint8(images=tf.constant(images))
            from_float = serve_float(images=tf.constant(images.astype(np.float32) / np.float32(255.0)))
            for kind, out in (("uint8", from_uint8), ("float", from_float)):
                for output, value in out.items():
                    results[f"{name}|{key}|{kind}|{output}"] = value.numpy()
        cards[name] = json.loads(tf.io.read_file(loaded.model_card.asset_path).numpy())
    np.savez(out_path, **results)
    with open(out_path + ".json", "w") as fh:
        json.dump({"cards": cards, "imported_mitoseg_tf": any(m.startswith("mitoseg_tf") for m in sys.modules)}, fh)
    """
)


def reflect_pad_reference(images, stride):
    """NumPy's reflect pad split as the export documents it, and the crop offsets."""
    height, width = images.shape[1:3]
    pad_h, pad_w = -height % stride, -width % stride
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(images, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0)), mode="reflect")
    return padded, top, left


def keras_outputs(model, images):
    """What the export should serve, from the Keras model on images padded the way the export pads.

    The mitosis probability at the input size, and a detector's ``det_*`` outputs with boxes moved
    from the padded frame to the image's and clipped to it.
    """
    padded, top, left = reflect_pad_reference(images.astype(np.float32), network_stride(model))
    outputs = model(padded, training=False)
    if isinstance(outputs, (list, tuple)):
        outputs = dict(zip([t._keras_history.operation.name for t in model.outputs], outputs))
    elif not isinstance(outputs, dict):
        outputs = {"mask": outputs}
    outputs = {k: np.asarray(keras.ops.convert_to_numpy(v), np.float32) for k, v in outputs.items()}
    scores = outputs["mask"]
    activation = model.get_layer("mask").get_config().get("activation") or "linear"
    if activation == "linear":
        ops = keras.ops
        scores = ops.convert_to_numpy(ops.softmax(scores, axis=-1) if scores.shape[-1] > 1 else ops.sigmoid(scores))
    probability = scores[..., 1] if scores.shape[-1] > 1 else scores[..., 0]
    height, width = images.shape[1:3]
    instances = {k: v for k, v in outputs.items() if k.startswith("det_")}
    if instances:
        instances["det_boxes"] = np.clip(
            instances["det_boxes"] - [left, top, left, top], 0, [width, height, width, height]
        )
    return probability[:, top : top + height, left : left + width], instances


def tiny_any_size(name, **overrides):
    return build(name, **{**get_card(name).tiny, "input_shape": (None, None, 3), **overrides})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Export every model, run them all in one TensorFlow-only process; returns what it saw."""
    budget = time_limits.Budget()  # a module fixture's time counts against its first test's limit
    root = tmp_path_factory.mktemp("exports")
    work = tmp_path_factory.mktemp("work")
    rng = np.random.default_rng(0)
    inputs = {f"{h}x{w}": rng.integers(0, 256, (BATCH, h, w, 3), dtype=np.uint8) for h, w in SIZES}
    np.savez(work / "inputs.npz", **inputs)

    expected, strides = {}, {}
    for key, (name, policy, overrides) in JOBS.items():
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(1)
            model = tiny_any_size(name, **overrides)
            export(model, root / key, threshold=0.5)
            strides[key] = network_stride(model)
            for size, images in inputs.items():
                expected[(key, size)], expected[(key, size, "instances")] = keras_outputs(model, images)
        finally:
            keras.mixed_precision.set_global_policy("float32")

    script = work / "load.py"
    script.write_text(LOADER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(script), str(root), str(work / "inputs.npz"), str(work / "out.npz")],
        capture_output=True,
        text=True,
        cwd=str(work),
        env=env,
        timeout=budget.left(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = dict(np.load(work / "out.npz"))
    with open(work / "out.npz.json") as fh:
        meta = json.load(fh)
    return {"root": root, "inputs": inputs, "expected": expected, "strides": strides, "results": results, **meta}


def test_loader_process_did_not_import_the_package(served):
    assert served["imported_mitoseg_tf"] is False


@pytest.mark.parametrize("name", list(JOBS))
def test_outputs_match_keras_at_every_size(served, name):
    bound = MIXED_BFLOAT16_BOUND if name == MIXED else FLOAT32_BOUND
    for size, images in served["inputs"].items():
        want = served["expected"][(name, size)]
        got = served["results"][f"{name}|{size}|uint8|probability"]
        got_float = served["results"][f"{name}|{size}|float|probability"]
        mask = served["results"][f"{name}|{size}|uint8|mask"]
        assert got.shape == images.shape[:3] and got.dtype == np.float32, (size, got.shape, got.dtype)
        assert mask.shape == images.shape[:3] and mask.dtype == np.uint8
        assert np.abs(got - want).max() <= bound, (size, float(np.abs(got - want).max()))
        # 0-255 uint8 and 0-1 float inputs are the same images.
        assert np.abs(got_float - got).max() <= bound, (size, float(np.abs(got_float - got).max()))
        np.testing.assert_array_equal(mask, (got > 0.5).astype(np.uint8))
        assert ((got >= 0) & (got <= 1)).all()


DETECTORS = [name for name in MODELS if "detector" in get_card(name).tags]


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_serves_its_instances_in_image_coordinates(served, name):
    want_keys = {"det_boxes", "det_classes", "det_scores", "det_maskiou", "det_mask_scores", "det_masks"}
    found_any = False
    for size, images in served["inputs"].items():
        want = served["expected"][(name, size, "instances")]
        assert set(want) == want_keys
        for key, value in want.items():
            got = served["results"][f"{name}|{size}|uint8|{key}"]
            assert got.shape == value.shape and got.dtype == np.float32, (size, key, got.shape)
            np.testing.assert_allclose(got, value, atol=1e-4, err_msg=f"{size} {key}")
        boxes = served["results"][f"{name}|{size}|uint8|det_boxes"]
        height, width = images.shape[1:3]
        assert (boxes >= 0).all() and (boxes[..., 0::2] <= width).all() and (boxes[..., 1::2] <= height).all()
        found_any |= bool((served["results"][f"{name}|{size}|uint8|det_scores"] > 0).any())
    assert found_any, "no detections at any size: the comparison above checked only padding"
    assert want_keys <= set(served["cards"][name]["output"])
    # Segmentation networks serve the probability and mask only.
    assert not [k for k in served["results"] if k.startswith("unet|") and "|det_" in k]
    assert not want_keys & set(served["cards"]["unet"]["output"])


def test_card_is_readable_from_the_saved_model_alone(served):
    for name in MODELS:
        card = served["cards"][name]
        assert card["name"] == name
        assert card["threshold"] == 0.5
        assert card["input"]["stride"] == served["strides"][name]
        assert card["package_version"]
        assert card["sliding_window"]["signature"] == "serving_tiled"
        assert (card["sliding_window"]["tile"], card["sliding_window"]["overlap"]) == (512, 0.25)
        with open(os.path.join(served["root"], name, "assets", CARD_FILE)) as fh:
            assert json.load(fh) == card
    assert served["cards"][MIXED]["dtype_policy"] == "mixed_bfloat16"


def saved_model_cli():
    """The command line of TensorFlow's saved_model_cli for this interpreter's TensorFlow.

    A virtual environment's scripts sit next to its python and are often not on PATH (an
    unactivated venv, CI calling venv/bin/python); the module itself is the last resort, so
    the test never skips while TensorFlow is installed.
    """
    beside = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if os.access(beside, os.X_OK):
        return [beside]
    on_path = shutil.which("saved_model_cli")
    return [on_path] if on_path else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def test_saved_model_cli_is_found_beside_the_interpreter_before_path(tmp_path, monkeypatch):
    venv, elsewhere = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    for folder in (venv, elsewhere):
        folder.mkdir(parents=True)
        (folder / "saved_model_cli").write_text("#!/bin/sh\n")
        (folder / "saved_model_cli").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    monkeypatch.setenv("PATH", str(elsewhere))
    assert saved_model_cli() == [str(venv / "saved_model_cli")]
    (venv / "saved_model_cli").unlink()
    assert saved_model_cli() == [str(elsewhere / "saved_model_cli")]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert saved_model_cli() == [str(venv / "python"), "-m", "tensorflow.python.tools.saved_model_cli"]


def test_saved_model_cli_lists_every_signature(served):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [*saved_model_cli(), "show", "--dir", str(served["root"] / "mcsa_unet"), "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for signature in ("serving_default", "serving_float", "serving_tiled"):
        assert f"signature_def['{signature}']" in text
    assert "dtype: DT_UINT8" in text and "shape: (-1, -1, -1, 3)" in text
    for output in ("probability", "mask"):
        assert f"outputs['{output}']" in text


def test_fixed_size_model_is_served_at_any_size(tmp_path):
    """A model built for 32x32 tiles is rebuilt for any size, sharing its weights."""
    import tensorflow as tf

    model = build("unet", **get_card("unet").tiny)
    assert model.input_shape[1:3] == (32, 32)
    export(model, tmp_path / "fixed")
    images = np.random.default_rng(1).integers(0, 256, (1, 37, 50, 3), dtype=np.uint8)
    out = tf.saved_model.load(str(tmp_path / "fixed")).signatures["serving_default"](images=tf.constant(images))
    assert out["probability"].shape == (1, 37, 50)
    # The same weights at a size the fixed model takes directly.
    square = images[:, :32, :32]
    direct = tf.saved_model.load(str(tmp_path / "fixed")).signatures["serving_default"](images=tf.constant(square))
    assert np.abs(direct["probability"].numpy() - keras_outputs(model, square)[0]).max() <= FLOAT32_BOUND


@pytest.mark.parametrize("name, overlap", [("unet", 0.25), ("unet_3plus", 0.5)])
def test_tiled_signature_reproduces_python_sliding_window(tmp_path, name, overlap):
    """serving_tiled gives predict_image's map: same tiles, margins, shrinking and Gaussian blending."""
    import tensorflow as tf

    from mitoseg_tf.inference import predict_image

    keras.utils.set_random_seed(3)
    model = tiny_any_size(name)
    tile = 2 * network_stride(model)
    export(model, tmp_path / "tiled", tile=tile, overlap=overlap)
    loaded = tf.saved_model.load(str(tmp_path / "tiled"))
    serve = loaded.signatures["serving_tiled"]
    rng = np.random.default_rng(4)
    # Several tiles each way with uneven last steps; one side below a tile; smaller than the stride.
    for height, width in [(70, 90), (37, 50), (5, 7)]:
        images = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
        out = serve(images=tf.constant(images))
        assert out["probability"].shape == (2, height, width)
        for got, image in zip(out["probability"].numpy(), images):
            want = predict_image(model, image, tile=tile, overlap=overlap)
            assert np.abs(got - want).max() <= FLOAT32_BOUND, (height, width, float(np.abs(got - want).max()))
        np.testing.assert_array_equal(out["mask"].numpy(), (out["probability"].numpy() > 0.5).astype(np.uint8))
    # The blending matters: the whole-image pass differs from the tiled map on a multi-tile field.
    big = rng.integers(0, 256, (1, 70, 90, 3), dtype=np.uint8)
    whole = loaded.signatures["serving_default"](images=tf.constant(big))
    assert np.abs(whole["probability"].numpy() - serve(images=tf.constant(big))["probability"].numpy()).max() > 1e-3


def test_tta_export_reproduces_python_tta(tmp_path):
    """tta=True: serving_tiled gives predict_image(..., tta=True), serving_default the 8 transforms' mean."""
    import tensorflow as tf

    from mitoseg_tf.inference import predict_image

    keras.utils.set_random_seed(6)
    model = tiny_any_size("unet")
    stride = network_stride(model)
    tile = 2 * stride
    card = export(model, tmp_path / "tta", tile=tile, tta=True)
    assert card["tta"] is True
    loaded = tf.saved_model.load(str(tmp_path / "tta"))
    rng = np.random.default_rng(7)
    # Non-square tiles on the small field: the rotated tiles are (w, h) and must come back as (h, w).
    for height, width in [(70, 90), (37, 50)]:
        image = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        got = loaded.signatures["serving_tiled"](images=tf.constant(image))["probability"].numpy()[0]
        want = predict_image(model, image[0], tile=tile, tta=True)
        assert np.abs(got - want).max() <= FLOAT32_BOUND, (height, width)
        assert np.abs(got - predict_image(model, image[0], tile=tile)).max() > 1e-3  # TTA changed the map
    # Whole-image pass on a field needing no padding: the mean of the 8 transformed maps, by NumPy.
    image = rng.integers(0, 256, (1, 2 * stride, 3 * stride, 3), dtype=np.uint8)
    got = loaded.signatures["serving_default"](images=tf.constant(image))["probability"].numpy()
    maps = []
    for k in range(8):
        turned = np.rot90(image.astype(np.float32), k % 4, axes=(1, 2))
        turned = turned[:, :, ::-1] if k >= 4 else turned
        out = np.asarray(model(np.ascontiguousarray(turned), training=False))[..., 1]
        out = out[:, :, ::-1] if k >= 4 else out
        maps.append(np.rot90(out, -(k % 4), axes=(1, 2)))
    assert np.abs(got - np.mean(maps, axis=0)).max() <= FLOAT32_BOUND


def test_tta_export_refuses_detectors(tmp_path):
    with pytest.raises(ValueError, match="is a detector whose instances"):
        export(tiny_any_size("ms_rcnn"), tmp_path / "det", tta=True)
    with pytest.raises(ValueError, match="tta must be True or False"):
        export(tiny_any_size("unet"), tmp_path / "x", tta="yes")


def test_user_model_with_stock_bilinear_upsampling_is_served_at_any_size(tmp_path):
    """Keras' own bilinear UpSampling2D cannot trace for unknown sizes (keras-team/keras#22079); the export
    swaps in a graph-safe copy for users' models (zoo networks use BilinearUpSampling2D instead)."""
    import tensorflow as tf

    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(x)
    x = keras.layers.Conv2D(2, 1, name="scores")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="mask")(x))
    export(model, tmp_path / "user", stride=2)
    serve = tf.saved_model.load(str(tmp_path / "user")).signatures["serving_default"]
    rng = np.random.default_rng(5)
    for height, width in [(16, 20), (9, 13)]:
        images = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        got = serve(images=tf.constant(images))["probability"].numpy()
        padded, top, left = reflect_pad_reference(images.astype(np.float32), 2)
        want = np.asarray(model(padded))[..., 1][:, top : top + height, left : left + width]
        assert np.abs(got - want).max() <= FLOAT32_BOUND, (height, width)


def test_export_rejects_bad_arguments(tmp_path):
    model = tiny_any_size("unet")
    with pytest.raises(ValueError, match="threshold"):
        export(model, tmp_path / "a", threshold=1.5)
    stride = network_stride(model)
    with pytest.raises(ValueError, match=f"tile must be a positive multiple of the network stride {stride}"):
        export(model, tmp_path / "a", tile=stride + 1)
    with pytest.raises(ValueError, match=r"overlap must be a fraction in \[0, 1\)"):
        export(model, tmp_path / "a", overlap=1.0)
    plain = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 1, name="scores")])
    with pytest.raises(ValueError, match="'mask'"):
        export(plain, tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        export(model, tmp_path / "file")


def test_figure_classifier_export_refuses_a_segmentation_network(tmp_path):
    from mitoseg_tf.export import export_figure_classifier

    with pytest.raises(ValueError, match=r"takes a window classifier \(W, W, 3\) -> \(1,\)"):
        export_figure_classifier(build("unet", base_filters=4, input_shape=(None, None, 3)), tmp_path / "x")
