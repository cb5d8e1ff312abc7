"""Analytic FLOP count of a functional Keras model (convolutions and dense layers).

Counts 2 * multiply-accumulates of Conv2D / Conv2DTranspose / Dense layers,
including those nested inside custom layers (CBAM's MLP and 7x7 conv); the
element-wise work (BN, activations, gates) is left out, as FLOP counters
usually do. Training is taken as 3x the forward pass (forward + two backward
matmuls per layer).
"""

import keras


def _layer_flops(layer, output_shape):
    if isinstance(layer, keras.layers.Conv2DTranspose):
        in_channels = layer.kernel.shape[-1]
        h, w = output_shape[1], output_shape[2]
        kh, kw = layer.kernel_size
        return 2 * h * w * kh * kw * in_channels * layer.filters / (layer.strides[0] * layer.strides[1])
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        in_channels = layer.kernel.shape[-2]
        h, w = output_shape[1], output_shape[2]
        return 2 * h * w * kh * kw * in_channels * layer.filters
    if isinstance(layer, keras.layers.Dense):
        return 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return 0


def forward_flops(model, height, width):
    """FLOPs of one forward pass on one height x width image."""
    import numpy as np

    total = 0
    # Run once eagerly with hooks-free approach: record each conv's output size from a probe call.
    shapes = {}
    originals = {}

    def wrap(layer):
        call = layer.call

        def recorded(*args, **kwargs):
            out = call(*args, **kwargs)
            shapes.setdefault(id(layer), []).append(tuple(out.shape))
            return out

        originals[id(layer)] = call
        layer.call = recorded

    layers = [l for l in model._flatten_layers(include_self=False, recursive=True)]
    counted = [l for l in layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    for layer in counted:
        wrap(layer)
    try:
        model(np.zeros((1, height, width, model.input_shape[-1]), "float32"), training=False)
    finally:
        for layer in counted:
            layer.call = originals[id(layer)]
    for layer in counted:
        for shape in shapes.get(id(layer), []):
            total += _layer_flops(layer, shape)
    return float(total)
