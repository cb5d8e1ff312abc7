"""What a zoo model's outputs are: their names and roles, the primary map, its mitosis probability, the stride.

One convention for every zoo model, so single-output U-Nets, deep-supervision
networks, classification-guided ones and the detector train, predict and
export through the same helpers:

- ``mask``: the primary (final) segmentation map; evaluation and prediction use it.
- ``mask_*``: extra segmentation heads (deep supervision), trained on the same mask.
- ``cls`` or ``cls_*``: per-tile probability that the tile contains the target
  class; trained against ``max(mask) > 0``.
- ``det_*``: instance outputs of a detector (boxes, scores, per-instance
  masks); the detector trains them with its own losses from the same mask
  (see ``computes_own_loss`` in ``mitoseg_tf.models.ms_rcnn``).

Backend-neutral: Keras and NumPy only, so training, inference and export all
read these facts from here.
"""

import math

import numpy as np

from mitoseg_tf.layers.checks import InputSizeCheck

SEGMENTATION = "segmentation"
CLASSIFICATION = "classification"
DETECTION = "detection"
PRIMARY_OUTPUT = "mask"
DETECTION_PREFIX = "det_"
# Channel of the mitosis class in a multi-class map (channel 0 is background); a one-channel map is the mitosis score.
MITOSIS_CLASS = 1


def output_names(model):
    """Names of a functional model's outputs, in order."""
    return [tensor._keras_history.operation.name for tensor in model.outputs]


def output_roles(model):
    """``{output name: role}``; raises ValueError for outputs the convention does not cover."""
    roles = {}
    for name in output_names(model):
        if name == PRIMARY_OUTPUT or name.startswith(PRIMARY_OUTPUT + "_"):
            roles[name] = SEGMENTATION
        elif name == "cls" or name.startswith("cls_"):
            roles[name] = CLASSIFICATION
        elif name.startswith(DETECTION_PREFIX):
            roles[name] = DETECTION
        else:
            raise ValueError(
                f"Model {model.name!r} has an output named {name!r}; zoo outputs are named 'mask' "
                f"(primary map), 'mask_<head>' (extra maps), 'cls'/'cls_<head>' (per-tile class) or "
                f"'det_<name>' (detector instances)."
            )
    if PRIMARY_OUTPUT not in roles:
        raise ValueError(f"Model {model.name!r} has no output named 'mask' (outputs: {list(roles)}).")
    return roles


def output_is_logits(model, output_name=PRIMARY_OUTPUT):
    """True when the named output layer emits logits (linear activation)."""
    layer = model.get_layer(output_name)
    activation = layer.get_config().get("activation")
    return activation in (None, "linear")


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def primary_probabilities(model, images):
    """Per-pixel class probabilities of the primary output for a batch of images (NumPy, float32)."""
    outputs = model.predict_on_batch(images)
    if isinstance(outputs, dict):
        outputs = outputs[PRIMARY_OUTPUT]
    elif isinstance(outputs, (list, tuple)):
        outputs = outputs[output_names(model).index(PRIMARY_OUTPUT)]
    scores = np.asarray(outputs, dtype=np.float32)
    if output_is_logits(model):
        scores = _softmax(scores) if scores.shape[-1] > 1 else 1.0 / (1.0 + np.exp(-scores))
    return scores


def mitosis_probability(scores):
    """The mitosis map (..., H, W) of class probabilities (..., H, W, C): class 1 of several, the one channel of one."""
    return scores[..., MITOSIS_CLASS] if scores.shape[-1] > 1 else scores[..., 0]


def all_layers(model):
    """Every layer, descending into nested models."""
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(getattr(layer, "layers", []))


def network_stride(model):
    """The size multiple the model needs: the lcm of its ``InputSizeCheck`` layers' ``multiple`` (1 if none)."""
    multiples = [layer.multiple for layer in all_layers(model) if isinstance(layer, InputSizeCheck)]
    return math.lcm(*multiples) if multiples else 1
