"""Export a zoo model as a TensorFlow SavedModel that serves whole images.

The exported graph takes a batch of RGB images of any height and width, pads
them (reflect) to a multiple of the network's stride, runs the model, crops
back and returns, at the input size::

    probability  float32 (B, H, W)  per-pixel mitosis probability
    mask         uint8   (B, H, W)  1 where probability > threshold

A detector (``ms_rcnn``) also serves its instances, under the model's own
output names: ``det_boxes`` float32 (B, D, 4) as x1, y1, x2, y2 pixels of the
input image (shifted back from the padded frame, clipped to the image),
``det_classes``, ``det_scores``, ``det_maskiou``, ``det_mask_scores`` (B, D) and
``det_masks`` (B, D, 28, 28) per box; padding detections have score 0.

Three signatures:

- ``serving_default``: ``images`` uint8 ``[None, None, None, 3]``, RGB 0-255
  (what ``tf.io.decode_png`` gives).
- ``serving_float``: ``images`` float32 ``[None, None, None, 3]``, RGB 0-1
  (multiplied by 255 in the graph; values are not clipped).
- ``serving_tiled``: uint8 images like ``serving_default``, predicted by
  sliding window (``tile`` and ``overlap`` fixed at export, 512 and 0.25 by
  default) with the Gaussian blending of ``mitoseg_tf.inference.predict_image``,
  whose maps it reproduces; memory for the network is bounded by one tile per
  image, whatever the image size. ``probability`` and ``mask`` only.

The model's own normalisation stays inside the model (zoo models take 0-255).
Loading needs TensorFlow only, not this package::

    loaded = tf.saved_model.load(export_dir)
    out = loaded.signatures["serving_default"](images=tf.constant(batch_uint8))
    out["probability"], out["mask"]
    card = json.loads(tf.io.read_file(loaded.model_card.asset_path).numpy())
    # or, without TensorFlow: json.load(open(f"{export_dir}/assets/model_card.json"))

``serving_default`` runs a whole image through the network in one pass
(memory grows with the image area); ``serving_tiled`` is the one for large
fields. ``export(..., tta=True)`` (``mitoseg export --tta``) averages every
signature's probability over the 8 flips and quarter turns, as
``mitoseg predict --tta`` does (on each tile for ``serving_tiled``, so it
reproduces ``predict_image(..., tta=True)``); 8x the inference time, and not
for detectors, whose instances cannot be averaged that way.
"""

import datetime
import json
import os
import tempfile

import keras
import numpy as np

from mitoseg_tf import __version__
from mitoseg_tf.inference.tta import NUM_TRANSFORMS
from mitoseg_tf.models.outputs import (
    DETECTION_PREFIX,
    MITOSIS_CLASS,
    PRIMARY_OUTPUT,
    all_layers,
    network_stride,
    output_names,
)
from mitoseg_tf.zoo import get_card

CARD_FILE = "model_card.json"
# A detector's per-instance outputs (``det_*``) are served too; its boxes move back to the unpadded image.
BOXES = "det_boxes"


def _tf():
    # TensorFlow only when a graph is built: importing this module (CARD_FILE, network_stride) does not need it.
    import tensorflow as tf

    return tf


def _instance_outputs(model):
    """The detector outputs (``det_*``) the export serves besides the probability and mask."""
    return [name for name in output_names(model) if name.startswith(DETECTION_PREFIX)]


def _output_activation(model):
    layer = model.get_layer(PRIMARY_OUTPUT)
    return layer.get_config().get("activation") or "linear"


def _with_any_size_input(model):
    """``model`` itself when its input takes any height and width, else a functional clone that does.

    Zoo networks are fully convolutional, so a model built for fixed-size tiles
    runs on any multiple of its stride once the input spec allows it.
    """
    shape = tuple(model.inputs[0].shape)
    if shape[1] is None and shape[2] is None:
        return model

    config = model.get_config()
    input_layers = [layer for layer in config.get("layers", []) if layer.get("class_name") == "InputLayer"]
    if len(input_layers) != 1:
        raise ValueError(
            f"export: {model.name!r} has a fixed input size {shape[1:3]} and is not a single-input functional "
            f"model that can be rebuilt for any size; build it with input_shape=(None, None, 3)."
        )
    layer_config = input_layers[0]["config"]
    key = "batch_shape" if "batch_shape" in layer_config else "batch_input_shape"
    layer_config[key] = [None, None, None, shape[3]]
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _graph_safe_upsampling_class():
    tf = _tf()

    class GraphSafeUpSampling2D(keras.layers.UpSampling2D):
        """``UpSampling2D`` whose interpolating resize works on unknown spatial sizes in a graph.

        Keras 3.15 checks ``size[0] <= 0`` in Python inside ``ops.image.resize``
        (keras-team/keras#22079), which fails when the size is a symbolic
        tensor, i.e. whenever a ``(None, None, 3)`` model is traced for any
        input size. The resize itself is the TensorFlow backend's own call.
        """

        def call(self, inputs):
            if self.interpolation == "nearest":
                return super().call(inputs)
            x = inputs if self.data_format == "channels_last" else tf.transpose(inputs, [0, 2, 3, 1])
            size = tf.shape(x)[1:3] * tf.constant(self.size, tf.int32)
            x = tf.cast(tf.image.resize(x, size, method=self.interpolation, antialias=False), inputs.dtype)
            return x if self.data_format == "channels_last" else tf.transpose(x, [0, 3, 1, 2])

    return GraphSafeUpSampling2D


def _graph_safe(model):
    """``model``, or a clone sharing its weights whose interpolating ``UpSampling2D`` layers trace on any size.

    Zoo networks use ``layers.BilinearUpSampling2D`` and need no clone; this is
    for users' own models built with Keras' stock layer.
    """

    def interpolating(layer):
        return isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation != "nearest"

    if not any(interpolating(layer) for layer in all_layers(model)):
        return model
    replacement = _graph_safe_upsampling_class()

    def clone(layer):
        if interpolating(layer):
            return replacement.from_config(layer.get_config())
        return layer  # the same layer object: the clone shares every weight

    return keras.models.clone_model(model, clone_function=clone)


def _reflect(position, size):
    """Source index of each position, mirrored about the edge pixels as often as needed (NumPy's ``reflect``)."""
    tf = _tf()
    period = tf.maximum(2 * size - 2, 1)
    folded = tf.math.floormod(position, period)
    return tf.where(folded < size, folded, period - folded)


def reflect_pad_indices(size, multiple):
    """Source index of every padded row/column and the offset of the original start.

    The image is padded to the next multiple of ``multiple``, split as evenly as
    possible between the two sides (one more at the end when the total is
    odd), by mirror reflection about the edge pixels (NumPy's ``reflect``),
    repeated for pads longer than the image so that any size works.
    """
    tf = _tf()
    total = tf.math.floormod(-size, multiple)
    before = total // 2
    return _reflect(tf.range(size + total) - before, size), before


def tta_view(images, k):
    """Transform ``k`` of ``inference.tta.forward`` in the graph: ``k % 4`` counter-clockwise quarter turns, then a
    mirror along the width if ``k >= 4``; images (B, H, W, C)."""
    tf = _tf()
    transformed = tf.image.rot90(images, k % 4)
    return tf.reverse(transformed, axis=[2]) if k >= 4 else transformed


def _tta_probability(model, images, activation, class_axis_size):
    """``_network_probability``'s map averaged over the 8 transforms of ``inference.tta`` (same order and meaning)."""
    tf = _tf()
    total = 0.0
    for k in range(NUM_TRANSFORMS):
        probability = _network_probability(model, tta_view(images, k), activation, class_axis_size)[0][..., None]
        if k >= 4:
            probability = tf.reverse(probability, axis=[2])
        total += tf.image.rot90(probability, (4 - k % 4) % 4)[..., 0]
    return total / NUM_TRANSFORMS


def _network_probability(model, images, activation, class_axis_size, tta=False):
    """Float 0-255 images whose sides are stride multiples -> (mitosis probability (B, H, W), detector outputs)."""
    tf = _tf()
    if tta:
        return _tta_probability(model, images, activation, class_axis_size), {}
    outputs = model(images, training=False)
    if isinstance(outputs, (list, tuple)):
        outputs = dict(zip(output_names(model), outputs))
    elif not isinstance(outputs, dict):
        outputs = {PRIMARY_OUTPUT: outputs}  # a single output is the map, whatever its layer is called
    instances = {name: tf.cast(outputs[name], tf.float32) for name in _instance_outputs(model)}
    scores = tf.cast(outputs[PRIMARY_OUTPUT], tf.float32)
    if activation == "linear":
        scores = tf.nn.softmax(scores, axis=-1) if class_axis_size > 1 else tf.sigmoid(scores)
    probability = scores[..., MITOSIS_CLASS] if class_axis_size > 1 else scores[..., 0]
    return probability, instances


def _pad_crop_predict(model, images, stride, activation, class_axis_size, tta=False):
    """Float 0-255 images (B, H, W, 3) -> (mitosis probability (B, H, W) at the input size, detector outputs)."""
    tf = _tf()
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows, top = reflect_pad_indices(height, stride)
    cols, left = reflect_pad_indices(width, stride)
    padded = tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)
    probability, instances = _network_probability(model, padded, activation, class_axis_size, tta)
    if BOXES in instances:
        # Boxes found in the reflected margin are clipped to the image like the mask is cropped.
        shift = tf.cast(tf.stack([left, top, left, top]), tf.float32)
        limit = tf.cast(tf.stack([width, height, width, height]), tf.float32)
        instances[BOXES] = tf.minimum(tf.maximum(instances[BOXES] - shift, 0.0), limit)
    return probability[:, top : top + height, left : left + width], instances


def _tile_starts(length, tile, overlap):
    """``inference.tiling.tile_starts`` in graph ops: evenly spread starts, the last flush with the end."""
    tf = _tf()
    step = tf.maximum(tf.cast(tf.cast(tile, tf.float64) * (1.0 - overlap), tf.int32), 1)
    count = tf.where(length <= tile, 1, (length - tile + step - 1) // step + 1)
    starts = tf.linspace(tf.constant(0.0, tf.float64), tf.cast(length - tile, tf.float64), count)
    return tf.cast(tf.round(starts), tf.int32)  # tf.round, like np.round, rounds halves to even


def _gaussian(height, width):
    """``inference.tiling.gaussian_weights`` (sigma = tile / 8, peak 1, floor 1e-4) for a dynamic tile shape."""
    tf = _tf()

    def axis(n):
        n_float = tf.cast(n, tf.float64)
        x = (tf.range(n_float, dtype=tf.float64) - (n_float - 1.0) / 2.0) / tf.maximum(n_float * 0.125, 1e-6)
        return tf.exp(-0.5 * x * x)

    weights = tf.cast(axis(height)[:, None] * axis(width)[None, :], tf.float32)
    return tf.maximum(weights / tf.reduce_max(weights), 1e-4)


def _tiled_predict(predict_tiles, images, stride, tile, overlap):
    """Sliding-window mitosis probability (B, H, W), the plan and blending of ``inference.predict_image``.

    ``predict_tiles(tiles (B, h, w, 3)) -> (B, h, w)``. Tiles are reflect-padded
    by ``tile // 16`` at the image border, shrink to the image (rounded up to
    ``stride``) when it is smaller than a tile, and are blended with Gaussian
    weights; one tile per image goes through the network at a time.
    """
    tf = _tf()
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    margin = tile // 16

    def round_up(size):
        return (size + stride - 1) // stride * stride

    tile_h = tf.minimum(tile, round_up(height + 2 * margin))
    tile_w = tf.minimum(tile, round_up(width + 2 * margin))
    padded_h = tf.maximum(height + 2 * margin, tile_h)
    padded_w = tf.maximum(width + 2 * margin, tile_w)
    rows = _reflect(tf.range(padded_h) - margin, height)
    cols = _reflect(tf.range(padded_w) - margin, width)
    padded = tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)
    row_starts = _tile_starts(padded_h, tile_h, overlap)
    col_starts = _tile_starts(padded_w, tile_w, overlap)
    num_cols = tf.size(col_starts)
    weights = _gaussian(tile_h, tile_w)
    batch = tf.shape(images)[0]

    def step(index, accumulated, weight_sum):
        top, left = row_starts[index // num_cols], col_starts[index % num_cols]
        probability = predict_tiles(padded[:, top : top + tile_h, left : left + tile_w])
        # Scatter the tile into the padded frame by padding it with zeros.
        place = [[top, padded_h - top - tile_h], [left, padded_w - left - tile_w]]
        accumulated += tf.pad(probability * weights, [[0, 0]] + place)
        weight_sum += tf.pad(weights, place)
        return index + 1, accumulated, weight_sum

    _, accumulated, weight_sum = tf.while_loop(
        lambda index, *_: index < tf.size(row_starts) * num_cols,
        step,
        (tf.constant(0), tf.zeros([batch, padded_h, padded_w]), tf.zeros([padded_h, padded_w])),
    )
    blended = accumulated / weight_sum
    return blended[:, margin : margin + height, margin : margin + width]


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def build_card(model, *, stride, threshold, activation, card=None, tile=512, overlap=0.25, tta=False):
    """The model card stored with the export: what the model is, what it takes and how it scored.

    Keys the caller passes in ``card`` (e.g. ``training_data``, ``metrics`` from
    a run folder) override the ones derived from the model.
    """
    zoo = {}
    try:
        entry = get_card(model.name)
        zoo = {
            "summary": entry.summary,
            "reference": entry.reference,
            "paper": entry.paper,
            "paper_results": entry.paper_results,
        }
    except ValueError:  # not a registered name: a custom model
        pass
    result = {
        "name": model.name,
        **zoo,
        "package": "mitoseg-tf",
        "package_version": __version__,
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": int(model.count_params()),
        "dtype_policy": getattr(getattr(model, "dtype_policy", None), "name", None),
        "training_data": "unknown (not recorded at export)",
        "metrics": None,
        "threshold": float(threshold),
        "input": {
            "signatures": {
                "serving_default": "images: uint8 [batch, height, width, 3], RGB 0-255",
                "serving_float": "images: float32 [batch, height, width, 3], RGB 0-1 (not clipped)",
                "serving_tiled": "images: uint8 [batch, height, width, 3], RGB 0-255; sliding window",
            },
            "any_size": True,
            "stride": int(stride),
            "padding": "reflect to the next multiple of stride, split evenly (extra pixel at the end), "
            "cropped back after the network",
            "normalisation": "inside the model (RGB 0-255 scaled to 0-1)",
        },
        "output": {
            "probability": "float32 [batch, height, width]: mitosis-class probability",
            "mask": f"uint8 [batch, height, width]: probability > {float(threshold)}",
            "network_output_activation": activation,
            **{
                name: "float32 [batch, detections, 4]: x1, y1, x2, y2 pixels of the input image"
                if name == BOXES
                else "float32 [batch, detections, ...]: per-detection output of the network (padding has score 0)"
                for name in _instance_outputs(model)
            },
        },
        "sliding_window": {
            "signature": "serving_tiled",
            "tile": int(tile),
            "overlap": float(overlap),
            "margin": int(tile) // 16,
            "blending": "Gaussian, sigma = tile / 8 (as mitoseg_tf.inference.predict_image)",
            "outputs": ["probability", "mask"],
        },
        "tta": bool(tta),
        "tta_transforms": "probability averaged over the 8 flips / quarter turns (per tile in serving_tiled)"
        if tta
        else None,
    }
    result.update(card or {})
    return _json_safe(result)


class _Server:
    """Holds the model and the tf.functions; ``module`` is what gets saved."""

    def __init__(self, model, stride, threshold, card_path, tile, overlap, tta):
        tf = _tf()
        activation = _output_activation(model)
        class_axis_size = int(model.get_layer(PRIMARY_OUTPUT).output.shape[-1])
        threshold = float(threshold)

        # One trace of the network, shared by both signatures (tracing dominates export time).
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def predict_0_255(images):
            probability, instances = _pad_crop_predict(model, images, stride, activation, class_axis_size, tta)
            return {"probability": probability, "mask": tf.cast(probability > threshold, tf.uint8), **instances}

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def serve_uint8(images):
            return predict_0_255(tf.cast(images, tf.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
        def serve_float(images):
            return predict_0_255(images * 255.0)

        def predict_tiles(tiles):
            # Tiles are stride multiples already: no padding to gather.
            return _network_probability(model, tiles, activation, class_axis_size, tta)[0]

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def serve_tiled(images):
            probability = _tiled_predict(predict_tiles, tf.cast(images, tf.float32), stride, tile, overlap)
            return {"probability": probability, "mask": tf.cast(probability > threshold, tf.uint8)}

        module = tf.Module()
        # The tf.Variables under the Keras variables, not the Keras model: tracking the
        # model saves every layer as an object too, which doubles the export time.
        module.model_variables = [v.value if hasattr(v, "value") else v for v in model.variables]
        module.predict_0_255 = predict_0_255
        module.serve_uint8 = serve_uint8
        module.serve_float = serve_float
        module.serve_tiled = serve_tiled
        module.model_card = tf.saved_model.Asset(card_path)
        self.module = module
        self.signatures = {"serving_default": serve_uint8, "serving_float": serve_float, "serving_tiled": serve_tiled}


def export(model, out_dir, *, card=None, threshold=0.5, stride=None, tile=512, overlap=0.25, tta=False, extend=None):
    """Write ``model`` as a SavedModel in ``out_dir`` (see the module docstring for the signatures).

    Args:
        model: a zoo model (Keras, TensorFlow backend); the primary ``mask``
            output is served, with a detector's ``det_*`` outputs; deep-supervision
            ``mask_*`` and ``cls`` outputs are training aids and are not served.
            A fixed-size functional model is rebuilt for any input size.
        out_dir: the SavedModel folder (created; must not hold a file).
        card: extra model-card entries (e.g. ``training_data``, ``metrics``)
            merged over the ones read from the model and the zoo registry.
        threshold: probability above which ``mask`` is 1.
        stride: the size multiple to pad to; default read from the model's
            ``InputSizeCheck`` layer(s).
        tile, overlap: the sliding window of ``serving_tiled`` (``tile`` a
            multiple of the stride; ``overlap`` the fraction neighbours share).
        tta: average the probability over the 8 flips / quarter turns in
            every signature (segmentation models only).
        extend: ``extend(model, module) -> {name: tf.function}``, more
            signatures saved beside these (``export.detector``'s figures);
            ``module`` holds the network's variables and its functions.

    Returns:
        The model card written as ``assets/model_card.json`` (a dict).

    ``serving_default`` processes each image in one pass; ``serving_tiled``
    by sliding window, for fields too large for that.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"export needs the TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}.")
    if not isinstance(model, keras.Model):
        raise ValueError(f"export takes a keras.Model; got {type(model).__name__}.")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"export: threshold must be in [0, 1]; got {threshold!r}.")
    try:
        model.get_layer(PRIMARY_OUTPUT)
    except ValueError as err:
        raise ValueError(f"export: {model.name!r} has no output layer named 'mask'.") from err
    if model.inputs and tuple(model.inputs[0].shape)[-1] != 3:
        raise ValueError(f"export: the model must take RGB images (3 channels); input is {model.inputs[0].shape}.")
    if not isinstance(tta, bool):
        raise ValueError(f"export: tta must be True or False; got {tta!r}.")
    if tta and _instance_outputs(model):
        raise ValueError(
            f"export: tta averages probability maps over flips and rotations; {model.name!r} is a detector whose "
            f"instances ({', '.join(_instance_outputs(model))}) cannot be averaged that way. Export it with tta=False."
        )
    out_dir = os.fspath(out_dir)
    if os.path.isfile(out_dir):
        raise ValueError(f"export: {out_dir!r} is a file; give a folder for the SavedModel.")

    model = _graph_safe(_with_any_size_input(model))
    stride = network_stride(model) if stride is None else int(stride)
    if stride < 1:
        raise ValueError(f"export: stride must be a positive integer; got {stride!r}.")
    if not isinstance(tile, int) or tile < stride or tile % stride:
        raise ValueError(f"export: tile must be a positive multiple of the network stride {stride}; got {tile!r}.")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"export: overlap must be a fraction in [0, 1); got {overlap!r}.")
    model_card = build_card(
        model,
        stride=stride,
        threshold=threshold,
        activation=_output_activation(model),
        card=card,
        tile=tile,
        overlap=overlap,
        tta=tta,
    )

    tf = _tf()
    with tempfile.TemporaryDirectory() as scratch:
        # The asset keeps its file name inside the SavedModel: assets/model_card.json.
        card_path = os.path.join(scratch, CARD_FILE)
        with open(card_path, "w") as fh:
            json.dump(model_card, fh, indent=2)
        server = _Server(model, stride, threshold, card_path, tile, float(overlap), tta)
        if extend is not None:
            server.signatures.update(extend(model, server.module))
        tf.saved_model.save(server.module, out_dir, signatures=server.signatures)
    return model_card
