"""RoIAlign on fixed-size padded boxes, with FPN level assignment (``keras.ops``).

Bilinear sampling as in Detectron2's ``ROIAlign(aligned=True)``: box
coordinates are scaled to the level and shifted by half a pixel, each output
bin averages ``sampling_ratio x sampling_ratio`` regularly spaced samples, a
sample more than one pixel outside the map contributes zero and one within
that pixel is clamped to the edge. Bilinear weights are separable, so every
box's samples become one gather of ``(output_size * sampling_ratio * 2)**2``
feature rows and two small weighted sums; all levels are flattened into one
table so boxes of every level are served by that single gather.
"""

import keras
from keras import ops


def assign_levels(boxes, min_level=2, max_level=5, canonical_size=224.0, canonical_level=4):
    """FPN level of each box: ``floor(canonical_level + log2(sqrt(area) / canonical_size))``, clamped."""
    area = ops.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * ops.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    level = ops.floor(canonical_level + ops.log2(ops.sqrt(area) / canonical_size + 1e-8))
    return ops.cast(ops.clip(level, min_level, max_level), "int32")


def _axis_samples(lo, hi, limit, output_size, sampling_ratio):
    """Rows (or columns) and weights of the samples along one axis.

    ``lo``, ``hi``: ``(N,)`` box edges in map pixels (already shifted by -0.5);
    ``limit``: ``(N,)`` map size along the axis. Returns ``index (N, S, 2 * sr)``
    int32 and ``weight (N, S, 2 * sr)`` float32: for each bin, each sample's two
    neighbours, weighted by the bilinear factor, 1 / sr and the sample's validity.
    """
    sr = sampling_ratio
    size = ops.cast(limit, "float32")[:, None, None]
    step = (hi - lo) / float(output_size)
    offsets = ops.arange(output_size, dtype="float32")[:, None] + (ops.arange(sr, dtype="float32")[None, :] + 0.5) / sr
    pos = lo[:, None, None] + offsets[None] * step[:, None, None]
    inside = ops.logical_and(pos >= -1.0, pos <= size)
    pos = ops.clip(pos, 0.0, size - 1.0)
    low = ops.floor(pos)
    high = ops.minimum(low + 1.0, size - 1.0)
    frac = pos - low
    scale = ops.cast(inside, "float32") / float(sr)
    index = ops.stack([low, high], axis=-1)
    weight = ops.stack([(1.0 - frac) * scale, frac * scale], axis=-1)
    n = ops.shape(lo)[0]
    return (
        ops.reshape(ops.cast(index, "int32"), (n, output_size, 2 * sr)),
        ops.reshape(weight, (n, output_size, 2 * sr)),
    )


def sample_grid(boxes, start, heights, widths, scales, output_size, sampling_ratio):
    """Flat gather indices and separable weights of every box's RoIAlign samples.

    Args:
        boxes: ``(N, 4)`` image-pixel boxes; ``start``: ``(N,)`` int32 index of
            the box's map (batch item and level) in the flat table;
            ``heights``/``widths``: ``(N,)`` int32 size of that map;
            ``scales``: ``(N,)`` float32 map pixels per image pixel.

    Returns:
        ``index (N, S, 2sr, S, 2sr)`` int32 into the flat table, ``wy (N, S, 2sr)``, ``wx (N, S, 2sr)``.
    """
    boxes = ops.cast(boxes, "float32") * scales[:, None] - 0.5
    yi, wy = _axis_samples(boxes[:, 1], boxes[:, 3], heights, output_size, sampling_ratio)
    xi, wx = _axis_samples(boxes[:, 0], boxes[:, 2], widths, output_size, sampling_ratio)
    index = (
        start[:, None, None, None, None]
        + yi[:, :, :, None, None] * widths[:, None, None, None, None]
        + xi[:, None, None, :, :]
    )
    return index, wy, wx


def pool(values, wy, wx):
    """Weighted sum of gathered samples ``(N, S, 2sr, S, 2sr, C)`` to bins ``(N, S, S, C)``."""
    wy = ops.cast(wy, values.dtype)
    wx = ops.cast(wx, values.dtype)
    rows = ops.sum(values * wy[:, :, :, None, None, None], axis=2)
    return ops.sum(rows * wx[:, None, :, :, None], axis=3)


def roi_align(features, boxes, output_size, sampling_ratio=2, min_level=2, canonical_size=224.0, canonical_level=4):
    """RoIAlign of ``boxes (B, R, 4)`` on pyramid ``features`` [P_min_level, ...] ``(B, h_l, w_l, C)``.

    Level ``min_level + i`` has stride ``2 ** (min_level + i)``. A single map
    (``len(features) == 1``) is used for every box. Returns ``(B, R, S, S, C)``
    in the features' dtype.
    """
    max_level = min_level + len(features) - 1
    batch = ops.shape(boxes)[0]
    rois = ops.shape(boxes)[1]
    channels = features[0].shape[-1]
    tables, starts, heights, widths = [], [], [], []
    offset = ops.convert_to_tensor(0, "int32")
    for f in features:
        shape = ops.shape(f)
        h, w = ops.cast(shape[1], "int32"), ops.cast(shape[2], "int32")
        tables.append(ops.reshape(f, (-1, channels)))
        starts.append(offset)
        heights.append(h)
        widths.append(w)
        offset = offset + ops.cast(shape[0], "int32") * h * w
    table = ops.concatenate(tables, axis=0) if len(tables) > 1 else tables[0]
    flat_boxes = ops.reshape(ops.cast(boxes, "float32"), (-1, 4))
    if len(features) > 1:
        level = ops.reshape(assign_levels(boxes, min_level, max_level, canonical_size, canonical_level), (-1,))
        pick = level - min_level
    else:
        pick = ops.zeros_like(ops.reshape(boxes[..., 0], (-1,)), dtype="int32")
    starts, heights, widths = (ops.stack(v) for v in (starts, heights, widths))
    h = ops.take(heights, pick)
    w = ops.take(widths, pick)
    item = ops.repeat(ops.arange(batch, dtype="int32"), rois)
    start = ops.take(starts, pick) + item * h * w
    scales = ops.power(2.0, -ops.cast(pick + min_level, "float32"))
    index, wy, wx = sample_grid(flat_boxes, start, h, w, scales, output_size, sampling_ratio)
    values = ops.take(table, ops.reshape(index, (-1,)), axis=0)
    s2 = 2 * sampling_ratio
    values = ops.reshape(values, (-1, output_size, s2, output_size, s2, channels))
    out = pool(values, wy, wx)
    return ops.reshape(out, (-1, rois, output_size, output_size, channels))


@keras.saving.register_keras_serializable(package="mitoseg")
class RoIAlign(keras.layers.Layer):
    """Layer form of ``roi_align``: ``[P2, ..., P5, boxes] -> (B, R, S, S, C)``.

    Features keep their dtype (bfloat16 under mixed precision); the box
    arithmetic and the bilinear weights are float32.
    """

    def __init__(self, output_size, sampling_ratio=2, min_level=2, canonical_size=224.0, canonical_level=4, **kwargs):
        super().__init__(**kwargs)
        self.autocast = False
        self.output_size = int(output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.min_level = int(min_level)
        self.canonical_size = float(canonical_size)
        self.canonical_level = int(canonical_level)

    def call(self, inputs):
        *features, boxes = inputs
        return roi_align(
            features,
            boxes,
            self.output_size,
            self.sampling_ratio,
            self.min_level,
            self.canonical_size,
            self.canonical_level,
        )

    def compute_output_shape(self, input_shapes):
        *features, boxes = input_shapes
        return (boxes[0], boxes[1], self.output_size, self.output_size, features[0][-1])

    def compute_output_spec(self, inputs):
        *features, boxes = inputs
        shape = (boxes.shape[0], boxes.shape[1], self.output_size, self.output_size, features[0].shape[-1])
        return keras.KerasTensor(shape, dtype=features[0].dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_size=self.output_size,
            sampling_ratio=self.sampling_ratio,
            min_level=self.min_level,
            canonical_size=self.canonical_size,
            canonical_level=self.canonical_level,
        )
        return config
