"""Loss weights of a model's segmentation heads.

What each output is (``mask``, ``mask_*``, ``cls``, ``det_*``) and its role is a
fact of the model: ``mitoseg_tf.models.outputs``.
"""

from mitoseg_tf.models.outputs import PRIMARY_OUTPUT


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
