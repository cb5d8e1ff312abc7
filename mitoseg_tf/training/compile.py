"""``compile_model``: one way to compile every zoo model (single or multi-output)."""

import keras

from mitoseg_tf import losses as losses_lib
from mitoseg_tf.metrics import default_metrics
from mitoseg_tf.models.outputs import CLASSIFICATION, PRIMARY_OUTPUT, output_is_logits, output_roles
from mitoseg_tf.training.targets import head_weights


def make_optimizer(learning_rate=1e-3, ema=True, ema_momentum=0.99):
    """Adam with an exponential moving average of the weights (the paper's recipe)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, use_ema=ema, ema_momentum=ema_momentum)


def _compile_detector(model, loss, optimizer, metrics, head_weighting, classification_weight, jit_compile):
    """A model with its own ``compute_loss`` (``computes_own_loss``): only the optimizer and mask metrics apply."""
    if loss is not None:
        raise ValueError(
            f"compile_model: {model.name} trains on its own losses (e.g. the six Mask Scoring R-CNN losses); "
            f"leave loss unset (got {loss!r})."
        )
    if head_weighting != "equal" or classification_weight != 1.0:
        raise ValueError(f"compile_model: head_weighting and classification_weight do not apply to {model.name}.")
    if metrics == "default":
        metrics = default_metrics(num_classes=2)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    model.set_mask_metrics(metrics)
    return model


def compile_model(
    model,
    loss=None,
    *,
    learning_rate=1e-3,
    optimizer=None,
    ema=True,
    ema_momentum=0.99,
    metrics="default",
    head_weighting="equal",
    classification_weight=1.0,
    jit_compile=None,
):
    """Compile ``model`` with the zoo's defaults and return it.

    Args:
        loss: a name (``ce``, the default, ``dice``, ``ce_dice``, ``focal``...) or a
            Keras loss for the segmentation outputs; whether the outputs are logits
            is read from the model. Models with ``computes_own_loss`` (the
            detector) take no loss: their own losses are used.
        optimizer: a Keras optimizer; default Adam(``learning_rate``) with weight
            EMA (``ema``, ``ema_momentum``). Give either this or the Adam options.
        metrics: ``"default"`` (Mean Dice, paper MPA, MPA, MIoU, mitosis Dice on
            the primary map), a list, or None.
        head_weighting: loss weights of several segmentation heads, ``equal`` or
            ``halving`` (deep supervision).
        classification_weight: loss weight of per-tile classification outputs.
        jit_compile: XLA-compile the train and test steps. None: on JAX only,
            where Keras runs an uncompiled step op by op (measured on 2 CPU cores,
            a tiny MCSA-Unet: 0.6 s a step against 0.03 s jitted); TensorFlow
            already runs the step as a graph, and torch.compile is not used.
    """
    if jit_compile is None:
        jit_compile = keras.backend.backend() == "jax"
    if optimizer is not None and (learning_rate != 1e-3 or not ema or ema_momentum != 0.99):
        raise ValueError(
            "compile_model: pass either optimizer= or the Adam options (learning_rate, ema, ema_momentum), not both."
        )
    optimizer = optimizer or make_optimizer(learning_rate, ema, ema_momentum)
    if getattr(model, "computes_own_loss", False):
        return _compile_detector(model, loss, optimizer, metrics, head_weighting, classification_weight, jit_compile)
    loss = "ce" if loss is None else loss
    roles = output_roles(model)
    num_classes = model.get_layer(PRIMARY_OUTPUT).output.shape[-1]
    seg_names = [n for n, r in roles.items() if r != CLASSIFICATION]
    weights = head_weights(seg_names, head_weighting)

    loss_map, weight_map = {}, {}
    for name, role in roles.items():
        if role == CLASSIFICATION:
            loss_map[name] = keras.losses.BinaryCrossentropy(
                from_logits=output_is_logits(model, name), name=f"{name}_bce"
            )
            weight_map[name] = float(classification_weight)
        else:
            loss_map[name] = losses_lib.get_loss(loss, from_logits=output_is_logits(model, name))
            weight_map[name] = weights[name]

    if metrics == "default":
        # a one-channel sigmoid map still scores two classes (background / mitosis)
        metrics = default_metrics(num_classes=max(num_classes, 2))
    single = len(roles) == 1
    model.compile(
        optimizer=optimizer,
        loss=loss_map[PRIMARY_OUTPUT] if single else loss_map,
        loss_weights=None if single else weight_map,
        metrics=(metrics if single else {PRIMARY_OUTPUT: metrics}) if metrics else None,
        jit_compile=jit_compile,
    )
    return model
