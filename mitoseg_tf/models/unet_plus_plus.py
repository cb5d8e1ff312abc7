"""UNet++: nested, densely connected skip pathways with deep supervision.

Zhou, Rahman Siddiquee, Tajbakhsh & Liang, "UNet++: A Nested U-Net
Architecture for Medical Image Segmentation", DLMIA 2018 (arXiv:1807.10165);
"UNet++: Redesigning Skip Connections..." IEEE TMI 2019 (arXiv:1912.05074).
Built as the official Keras code (MrGiovanni/UNetPlusPlus, keras/helper_functions.py) builds it.

Node X^{i,j} (i = level, j = column). X^{i,0} is the encoder; for j >= 1

    X^{i,j} = unit(concat[Up(X^{i+1,j-1}), X^{i,0}, X^{i,1}, ..., X^{i,j-1}])

with ``Up`` a 2x2 stride-2 transposed conv to F[i] channels and ``unit`` two
3x3 conv-ReLU (each followed by dropout 0.5 and with L2 1e-4 on the kernels in
the official code; ``norm="batch"`` gives the conv-BN-ReLU unit of the
widely used PyTorch variant). 1x1 heads sit on X^{0,1..4}.

Outputs (names follow ``mitoseg_tf.training.targets``):

- ``deep_supervision=False``: ``mask`` only, from the chosen column's head.
- ``deep_supervision=True``: ``mask_x0_4`` ... ``mask_x0_1``, one per head
  (listed from the deepest column, the order ``head_weighting="halving"``
  weights them in), and ``mask``: in ``mode="accurate"`` the average of the
  four maps (after their activation, as the official code averages sigmoid
  maps); in ``mode="fast"`` the chosen head itself (then its ``mask_x0_k``
  is not repeated).
- ``mode="fast"``, ``fast_head=k``: the pruned network UNet++ L^k, i.e. only
  the nodes X^{i,j} with i + j <= k that head k depends on (the encoder below
  level k is not built). It gives exactly the k-th head of the full network
  when it carries the full network's weights: the layer names are the same,
  so ``fast.set_weights`` per layer name (see ``transfer_weights``) prunes a
  trained model. Train the full network with deep supervision, prune for
  inference.

At the official defaults (f = 32, no BN) the network has 9.04 M parameters,
the official code's "Total params: 9,041,601" for one input channel and one
sigmoid class.
"""

import keras

from mitoseg_tf.layers.conv import KERNEL_INIT, check_norm, normalization
from mitoseg_tf.layers.heads import MapAverage
from mitoseg_tf.layers.upsampling import BilinearUpSampling2D
from mitoseg_tf.models.common import check_common_args, image_input

MODES = ("accurate", "fast")
UPSAMPLING = ("transpose", "bilinear")


def transfer_weights(source, target):
    """Copy weights from ``source`` into every layer of ``target`` with the same name.

    Prunes a trained full UNet++ into its ``mode="fast"`` network (or the
    reverse for fine-tuning). Returns the names of the layers copied.

    Example:
        >>> full = build_unet_plus_plus((64, 64, 3), base_filters=8)
        >>> fast = build_unet_plus_plus((64, 64, 3), base_filters=8, mode="fast", fast_head=2)
        >>> copied = transfer_weights(full, fast)
    """
    copied = []
    names = {layer.name for layer in source.layers}
    for layer in target.layers:
        if layer.weights and layer.name in names:
            layer.set_weights(source.get_layer(layer.name).get_weights())
            copied.append(layer.name)
    return copied


def _conv_unit(x, filters, prefix, *, norm, dropout, regularizer):
    """The official ``standard_unit``: (Conv3x3 -> [norm] -> ReLU -> [Dropout]) x 2."""
    for index in (1, 2):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=norm is None,
            kernel_initializer=KERNEL_INIT,
            kernel_regularizer=regularizer(),
            name=f"{prefix}_conv{index}",
        )(x)
        x = normalization(x, norm, prefix, index)
        x = keras.layers.Activation("relu", name=f"{prefix}_relu{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout{index}")(x)
    return x


def _up(x, filters, prefix, *, upsampling, regularizer):
    if upsampling == "transpose":
        return keras.layers.Conv2DTranspose(
            filters,
            2,
            strides=2,
            padding="same",
            kernel_initializer=KERNEL_INIT,
            kernel_regularizer=regularizer(),
            name=f"{prefix}_up",
        )(x)
    return BilinearUpSampling2D(2, name=f"{prefix}_up")(x)


def _head(x, column, num_classes, output_activation, output_name, regularizer):
    """1x1 conv to class scores (float32), named by node so pruned and full networks share it."""
    x = keras.layers.Conv2D(
        num_classes,
        1,
        padding="same",
        kernel_initializer=KERNEL_INIT,
        kernel_regularizer=regularizer(),
        dtype="float32",
        name=f"head_x0_{column}",
    )(x)
    return keras.layers.Activation(output_activation or "linear", dtype="float32", name=output_name)(x)


def _check_arguments(name, mode, upsampling, depth, fast_head, norm, kernel_l2):
    if mode not in MODES:
        raise ValueError(f"{name}: mode must be one of {MODES}; got {mode!r}.")
    if upsampling not in UPSAMPLING:
        raise ValueError(f"{name}: upsampling must be one of {UPSAMPLING}; got {upsampling!r}.")
    if not isinstance(depth, int) or not 1 <= depth <= 6:
        raise ValueError(f"{name}: depth (number of downsamplings) must be an integer in 1..6; got {depth!r}.")
    if mode == "fast" and (not isinstance(fast_head, int) or not 1 <= fast_head <= depth):
        raise ValueError(f"{name}: fast_head must be a column in 1..{depth}; got {fast_head!r}.")
    check_norm(name, norm)
    if kernel_l2 < 0:
        raise ValueError(f"{name}: kernel_l2 must be >= 0; got {kernel_l2!r}.")


def _nested_nodes(x, last_column, base_filters, unit, upsampling, regularizer):
    """``nodes[i][j]`` = X^{i,j} for every node with i + j <= ``last_column``: the encoder, then the nested columns."""
    nodes = [[] for _ in range(last_column + 1)]
    for i in range(last_column + 1):
        if i > 0:
            x = keras.layers.MaxPooling2D(2, name=f"x{i - 1}_0_pool")(nodes[i - 1][0])
        nodes[i].append(_conv_unit(x, base_filters * 2**i, f"x{i}_0", **unit))
    # Column by column, so every X^{i+1,j-1} exists before X^{i,j} needs it.
    for j in range(1, last_column + 1):
        for i in range(last_column + 1 - j):
            prefix = f"x{i}_{j}"
            filters = base_filters * 2**i
            up = _up(nodes[i + 1][j - 1], filters, prefix, upsampling=upsampling, regularizer=regularizer)
            x = keras.layers.Concatenate(name=f"{prefix}_concat")([up, *nodes[i][:j]])
            nodes[i].append(_conv_unit(x, filters, prefix, **unit))
    return nodes


def build_unet_plus_plus(
    input_shape=(256, 256, 3),
    num_classes=2,
    base_filters=32,
    depth=4,
    deep_supervision=True,
    mode="accurate",
    fast_head=4,
    norm=None,
    dropout=0.5,
    kernel_l2=1e-4,
    upsampling="transpose",
    output_activation="softmax",
    name="unet_plus_plus",
):
    """Build UNet++ (defaults: the official Keras code's network, f = 32).

    Args:
        input_shape: (H, W, C); H and W multiples of 2**depth (2**fast_head in
            "fast" mode), or None.
        num_classes: output channels (2 = background / mitosis with softmax).
        base_filters: width of level 0; level i has base_filters * 2**i (32 officially).
        depth: number of downsamplings (4: nodes X^{0..4,*}, heads on X^{0,1..4}).
        deep_supervision: one output per head (plus ``mask``); else ``mask`` only.
        mode: "accurate" (full network; ``mask`` averages the heads) or "fast"
            (the pruned network ending at column ``fast_head``).
        fast_head: the column k (1..depth) of the head X^{0,k} that "fast"
            mode keeps; unused in "accurate" mode, whose ``mask`` without deep
            supervision is the last head, X^{0,depth}.
        norm: None (the official conv-ReLU units), "batch" (the conv-BN-ReLU
            units of the PyTorch variant) or "group".
        dropout: rate after every conv of every unit (0.5 officially; 0 disables).
        kernel_l2: L2 weight decay on every conv kernel (1e-4 officially; 0 disables).
        upsampling: "transpose" (official 2x2 transposed conv to F[i]) or
            "bilinear" (the PyTorch variant: no conv, F[i+1] channels go on).
        output_activation: "softmax", "sigmoid" or None (logits); float32 always.

    Example:
        >>> model = build_unet_plus_plus((64, 64, 3), base_filters=8)
        >>> model.output_names   # mask, mask_x0_4, mask_x0_3, mask_x0_2, mask_x0_1
    """
    _check_arguments(name, mode, upsampling, depth, fast_head, norm, kernel_l2)
    # The pruned network L^k downsamples only k times.
    last_column = depth if mode == "accurate" else fast_head
    multiple = check_common_args(name, input_shape, num_classes, base_filters, last_column, output_activation, dropout)

    def regularizer():
        return keras.regularizers.L2(kernel_l2) if kernel_l2 else None

    unit = dict(norm=norm, dropout=dropout, regularizer=regularizer)
    inputs, x = image_input(input_shape, name, multiple)
    nodes = _nested_nodes(x, last_column, base_filters, unit, upsampling, regularizer)

    head = dict(num_classes=num_classes, output_activation=output_activation, regularizer=regularizer)
    outputs = _outputs(nodes[0], mode, depth, last_column, deep_supervision, head)
    return keras.Model(inputs, outputs, name=name)


def _outputs(top, mode, depth, last_column, deep_supervision, head):
    """The heads on the top row ``top`` = X^{0,*}, in the order the module docstring gives."""
    chosen = last_column if mode == "fast" else (depth if not deep_supervision else None)
    if not deep_supervision:
        return _head(top[chosen], chosen, output_name="mask", **head)
    heads = {
        j: _head(top[j], j, output_name="mask" if j == chosen else f"mask_x0_{j}", **head)
        for j in range(1, last_column + 1)
    }
    # Extra heads from the deepest column down: ``head_weighting="halving"``
    # weights heads in output order, and X^{0,4} is the one closest to the final map.
    if mode == "fast":
        return [heads[chosen]] + [heads[j] for j in range(last_column - 1, 0, -1)]
    average = MapAverage(activation=head["output_activation"], dtype="float32", name="mask")(
        [heads[j] for j in range(1, depth + 1)]
    )
    return [average] + [heads[j] for j in range(depth, 0, -1)]
