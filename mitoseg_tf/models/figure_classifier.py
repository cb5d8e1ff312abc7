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


def build_figure_classifier(window=48, widths=(32, 64, 128), dropout=0.3, name="figure_classifier"):
    """``window`` x ``window`` RGB in [0, 255] -> probability that a mitotic figure is at its centre.

    Per width, two 3x3 ReLU convolutions and a 2x2 max pool; then global average
    pooling, dropout and one sigmoid unit in float32 (287k parameters at the
    defaults). ``window`` must be divisible by ``2 ** len(widths)``.
    """
    widths = tuple(widths)
    if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"{name}: widths must be positive integers, one per level; got {widths!r}.")
    if not isinstance(window, int) or window < 2 ** len(widths) or window % 2 ** len(widths):
        raise ValueError(
            f"{name}: window must be a positive multiple of {2 ** len(widths)} ({len(widths)} poolings); got {window!r}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1); got {dropout!r}.")
    inputs = keras.Input((window, window, 3), name="window")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i}a")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i}b")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="drop")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="mitosis")(x)
    return keras.Model(inputs, outputs, name=name)
