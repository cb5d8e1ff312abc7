"""Where a detector's tiles run: TensorFlow (the default), XLA or ONNX Runtime.

``batch_predictor(model, runtime)`` gives the ``f(tiles float32 (B, h, w, 3)
0-255) -> mitosis probability float32 (B, h, w)`` that ``sliding_window.stitch``
calls, so the tiling, blending and figures stay one code path whatever runs
the network. Every runtime computes in float32: the detectors' thresholds were
chosen on float32 maps.

- ``tensorflow``: Keras' ``predict_on_batch`` (``sliding_window.probability_fn``).
- ``xla``: the same network as one XLA-compiled ``tf.function``; TensorFlow
  only, no extra package; one compilation per tile batch shape.
- ``onnxruntime``: the network converted once (tf2onnx, in memory) and run by
  ONNX Runtime; ``pip install 'mitoseg-tf[onnx]'``.

``benchmarks/slide_runtimes.py`` measures them side by side on the shipped
detector (speed, map agreement, figures); OpenVINO is measured there too, and
left out here because it was slower than TensorFlow on the 2-core AVX2 machine.
The two non-default runtimes need
the TensorFlow backend: they are built from a TensorFlow graph of the model
for tiles of any size, which zoo networks allow (their upsampling is
``layers.BilinearUpSampling2D``; Keras' own bilinear ``UpSampling2D`` does not
trace on unknown sizes, see ``export.saved_model._graph_safe``).
"""

import importlib.util
import logging

import numpy as np

from mitoseg_tf.defaults import DEFAULT_RUNTIME, RUNTIMES

# The import names each runtime needs, and the extra that installs them.
_NEEDS = {"onnxruntime": (("onnxruntime", "tf2onnx"), "onnx")}
# tf2onnx's converter emits ops of this set; ONNX Runtime releases of the last years all run it.
ONNX_OPSET = 17


def missing(runtime):
    """Why ``runtime`` cannot run here (a sentence naming the pip extra), or None when it can."""
    modules, extra = _NEEDS.get(runtime, ((), None))
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (
        f"runtime {runtime!r} needs {' and '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} not "
        f"installed: pip install 'mitoseg-tf[{extra}]' (or use runtime 'tensorflow')."
    )


def check_runtime(runtime):
    """``runtime`` itself when it is known and its packages are installed.

    Raises:
        ValueError: an unknown runtime, or one whose package is missing (the
            message names the pip extra), so a slide fails before its first tile.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}.")
    reason = missing(runtime)
    if reason:
        raise ValueError(reason)
    return runtime


def batch_predictor(model, runtime=DEFAULT_RUNTIME):
    """``f(tiles float32 (B, h, w, 3), 0-255) -> mitosis probability float32 (B, h, w)`` of ``model`` on ``runtime``.

    Raises:
        ValueError: as ``check_runtime``, or a runtime other than ``tensorflow``
            on a Keras backend other than TensorFlow.
    """
    from mitoseg_tf.inference.sliding_window import probability_fn

    check_runtime(runtime)
    if runtime == "tensorflow":
        return probability_fn(model)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"runtime {runtime!r} is built from a TensorFlow graph of the model; the Keras backend is "
            f"{keras.backend.backend()!r}. Use runtime 'tensorflow' (any backend) or KERAS_BACKEND=tensorflow."
        )
    graph, spec = _primary_graph(model)
    to_probability = _probability_of_primary(model)
    if runtime == "xla":
        import tensorflow as tf

        compiled = tf.function(graph.python_function, input_signature=spec, jit_compile=True)
        run = compiled  # one XLA compilation per distinct tile batch shape
    else:
        run = _onnxruntime(graph, spec)

    def predict(tiles):
        return to_probability(np.asarray(run(np.ascontiguousarray(tiles, np.float32)), np.float32))

    return predict


def _primary_graph(model):
    """A ``tf.function`` returning the primary ``mask`` output (B, h, w, C) for any batch of float32 tiles."""
    import tensorflow as tf

    from mitoseg_tf.models.outputs import PRIMARY_OUTPUT, output_names

    names = output_names(model)
    shape = tuple(model.inputs[0].shape)
    # A fixed-size model keeps its size: tiles of any other size would fail its own checks.
    spec = [tf.TensorSpec([None, shape[1], shape[2], shape[3]], tf.float32, name="tiles")]

    def primary(tiles):
        outputs = model(tiles, training=False)
        if isinstance(outputs, dict):
            return outputs[PRIMARY_OUTPUT]
        if isinstance(outputs, (list, tuple)):
            return outputs[names.index(PRIMARY_OUTPUT)]
        return outputs

    return tf.function(primary, input_signature=spec), spec


def _probability_of_primary(model):
    """NumPy: primary output (B, h, w, C) -> mitosis probability (B, h, w), as ``models.outputs`` does for Keras."""
    from mitoseg_tf.models.outputs import _softmax, mitosis_probability, output_is_logits

    logits = output_is_logits(model)

    def convert(scores):
        if logits:
            scores = _softmax(scores) if scores.shape[-1] > 1 else 1.0 / (1.0 + np.exp(-scores))
        return mitosis_probability(scores)

    return convert


def _onnxruntime(graph, spec):
    import onnxruntime
    import tf2onnx

    # tf2onnx logs every rewrite at INFO; a slide run would print pages of them.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_function(graph, input_signature=spec, opset=ONNX_OPSET)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda tiles: session.run(None, {name: tiles})[0]
