"""A small window classifier that rescores the candidate figures of a segmentation network.

A U-Net trained on public figure crops is a good candidate generator (on the
MITOS-2012 dev fields the shipped one has 27 of 32 mitoses among its 98 blobs
above probability 0.2) but a poor judge of which blobs are figures; a
classifier that sees only a 12-um window around each candidate ranks them
better (docs/RESULTS.md, "A second-stage figure classifier"). This is the
two-stage design of most MITOS-2012 and MIDOG entries (candidate detection,
then a patch classifier), at the size a 2-core CPU trains in a quarter hour.

Not a zoo segmentation network, so it is not in the registry: it is part of a
detector and ships beside the mitosis weights it rescores
(``mitoseg_tf.zoo.pretrained.load_rescorer``).

Example:
    >>> model = build_figure_classifier(window=48)
    >>> model(np.zeros((2, 48, 48, 3), "float32")).shape  # probability of "mitotic figure"
    (2, 1)
"""

import keras


def _check(window, widths, dropout, members, name):
    if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"{name}: widths must be positive integers, one per level; got {widths!r}.")
    if not isinstance(window, int) or window < 2 ** len(widths) or window % 2 ** len(widths):
        raise ValueError(
            f"{name}: window must be a positive multiple of {2 ** len(widths)} ({len(widths)} poolings); got {window!r}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1); got {dropout!r}.")
    if not isinstance(members, int) or members < 1:
        raise ValueError(f"{name}: members must be a positive integer; got {members!r}.")


def _tower(x, widths, dropout, prefix):
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{prefix}conv{i}a")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{prefix}conv{i}b")(x)
        x = keras.layers.MaxPooling2D(name=f"{prefix}pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{prefix}gap")(x)
    x = keras.layers.Dropout(dropout, name=f"{prefix}drop")(x)
    return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=f"{prefix}mitosis")(x)


def build_figure_classifier(window=48, widths=(32, 64, 128), dropout=0.3, members=1, name="figure_classifier"):
    """``window`` x ``window`` RGB in [0, 255] -> probability that a mitotic figure is at its centre.

    Per width, two 3x3 ReLU convolutions and a 2x2 max pool; then global average
    pooling, dropout and one sigmoid unit in float32 (287k parameters at the
    defaults). ``window`` must be divisible by ``2 ** len(widths)``.
    ``members`` > 1 builds that many such networks side by side (layers
    ``member{i}_...``) and averages their probabilities: an ensemble of
    separately trained classifiers in one model (``ensemble_figure_classifiers``).
    """
    widths = tuple(widths)
    _check(window, widths, dropout, members, name)
    inputs = keras.Input((window, window, 3), name="window")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    if members == 1:
        return keras.Model(inputs, _tower(x, widths, dropout, ""), name=name)
    outputs = [_tower(x, widths, dropout, f"member{i}_") for i in range(members)]
    return keras.Model(inputs, keras.layers.Average(dtype="float32", name="mitosis")(outputs), name=name)


def figure_classifier_arguments(model):
    """The ``build_figure_classifier`` arguments that rebuild ``model``'s architecture (for a card)."""
    first = [layer for layer in model.layers if layer.name.endswith("conv0a")]
    prefix = first[0].name[: -len("conv0a")]
    widths, level = [], 0
    while prefix + f"conv{level}a" in {layer.name for layer in model.layers}:
        widths.append(int(model.get_layer(prefix + f"conv{level}a").filters))
        level += 1
    return {
        "window": int(model.input_shape[1]),
        "widths": widths,
        "dropout": float(model.get_layer(prefix + "drop").rate),
        "members": len(first),
    }


def ensemble_figure_classifiers(models, name="figure_classifier"):
    """One model averaging the probabilities of separately trained single classifiers of one architecture."""
    arguments = [figure_classifier_arguments(m) for m in models]
    if not models or any(a != {**arguments[0], "members": 1} for a in arguments):
        raise ValueError(f"ensemble_figure_classifiers takes single classifiers of one architecture; got {arguments}.")
    ensemble = build_figure_classifier(**{**arguments[0], "members": len(models)}, name=name)
    for i, model in enumerate(models):
        for layer in model.layers:
            if layer.weights:
                ensemble.get_layer(f"member{i}_{layer.name}").set_weights(layer.get_weights())
    return ensemble
