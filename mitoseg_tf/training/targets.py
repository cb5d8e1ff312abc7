"""What each model output is trained against, read from the output's name.

One convention for every zoo model, so single-output U-Nets, deep-supervision
networks and classification-guided ones train through the same helpers:

- ``mask``: the primary (final) segmentation map; evaluation and prediction use it.
- ``mask_*``: extra segmentation heads (deep supervision), trained on the same mask.
- ``cls`` or ``cls_*``: per-tile probability that the tile contains the target
  class; trained against ``max(mask) > 0``.
- ``det_*``: instance outputs of a detector (boxes, scores, per-instance
  masks); the detector trains them with its own losses from the same mask
  (see ``computes_own_loss`` in ``mitoseg_tf.models.ms_rcnn``).
"""

SEGMENTATION = "segmentation"
CLASSIFICATION = "classification"
DETECTION = "detection"
PRIMARY_OUTPUT = "mask"


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
        elif name.startswith("det_"):
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


def head_weights(names, scheme="equal", floor=0.0625):
    """Loss weight per segmentation head: ``equal`` (1 each, then normalised) or
    ``halving`` (1 for the primary map, then 0.5, 0.25, ... never below ``floor``),
    like MONAI's DeepSupervisionLoss. Weights are normalised to sum to 1 so the
    loss scale does not depend on the head count.

    Halving follows the order of ``names`` after the primary map
    (``compile_model`` passes the model's output order): builders list their
    extra heads from the one closest to the final map to the farthest (UNet 3+
    hd2 .. hd5, UNet++ X^{0,4} .. X^{0,1}), as MONAI's networks do. A name
    sort would get UNet++ backwards."""
    if scheme not in ("equal", "halving"):
        raise ValueError(f"head weight scheme must be 'equal' or 'halving'; got {scheme!r}.")
    ordered = [PRIMARY_OUTPUT] + [n for n in names if n != PRIMARY_OUTPUT]
    if scheme == "equal":
        raw = [1.0] * len(ordered)
    else:
        raw = [max(0.5**i, floor) for i in range(len(ordered))]
    total = sum(raw)
    return {name: w / total for name, w in zip(ordered, raw)}
