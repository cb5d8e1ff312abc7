"""Instance targets from the binary mitosis mask, inside the training graph (``keras.ops``).

Every zoo model trains on the same ``(image, mask)`` batches; the detector
derives its instances itself, after augmentation, so the boxes always agree
with the crop, rotation and flip the pipeline applied:

- connected components with 8-connectivity: every mitosis pixel starts with
  its own index and takes the largest index in its 3x3 neighbourhood until
  nothing changes (a component ends up labelled by its last pixel in raster
  order); components are then numbered 1, 2, ... in that order;
- components smaller than ``min_area`` pixels are dropped (background), and
  only the first ``max_instances`` per image are kept (padding to that size);
- box ``[min_col, min_row, max_col + 1, max_row + 1]``, class 1.
"""

from keras import ops


def _components(mask):
    """Per-pixel component id: the 1-based raster index of the component's last pixel, 0 off the mask."""
    shape = ops.shape(mask)
    height, width = shape[1], shape[2]
    index = ops.reshape(ops.arange(1, height * width + 1, dtype="float32"), (1, height, width, 1))
    on = mask[..., None]
    labels = ops.where(on, index, 0.0)

    def body(labels, changed):
        grown = ops.where(on, ops.max_pool(labels, 3, 1, "same"), 0.0)
        return grown, ops.any(ops.not_equal(grown, labels))

    labels, _ = ops.while_loop(lambda labels, changed: changed, body, (labels, ops.convert_to_tensor(True)))
    return ops.cast(labels[..., 0], "int32")


def instance_targets(mask, max_instances, min_area=1):
    """Instances of a binary mask batch ``(B, H, W)`` (or ``(B, H, W, 1)``).

    Returns a dict:
        ``labels``  ``(B, H, W)`` int32: instance number 1..max_instances, 0 background;
        ``boxes``   ``(B, M, 4)`` float32 ``[x1, y1, x2, y2]`` (zeros for padding);
        ``classes`` ``(B, M)`` int32: 1 for a figure, 0 for padding;
        ``valid``   ``(B, M)`` bool;
        ``areas``   ``(B, M)`` float32 pixel count.
    """
    if len(mask.shape) == 4:
        mask = mask[..., 0]
    mask = ops.cast(mask, "float32") > 0.5
    shape = ops.shape(mask)
    height, width = shape[1], shape[2]
    ids = ops.reshape(_components(mask), (-1, height * width))
    flat_index = ops.arange(1, height * width + 1, dtype="int32")[None, :]
    roots = ops.logical_and(ids == flat_index, ids > 0)
    number = ops.cumsum(ops.cast(roots, "int32"), axis=1)
    # Each pixel's number is its root's number (gathered at the root's position).
    labels = ops.where(ids > 0, ops.take_along_axis(number, ops.maximum(ids - 1, 0), axis=1), 0)
    labels = ops.where(labels <= max_instances, labels, 0)
    slots = ops.arange(1, max_instances + 1, dtype="int32")
    onehot = labels[:, :, None] == slots[None, None, :]
    areas = ops.sum(ops.cast(onehot, "float32"), axis=1)
    valid = areas >= float(max(min_area, 1))
    rows = ops.cast(flat_index[0] - 1, "int32") // width
    cols = ops.cast(flat_index[0] - 1, "int32") % width
    big = height * width

    def extent(coord):
        coord = coord[None, :, None]
        low = ops.min(ops.where(onehot, coord, big), axis=1)
        high = ops.max(ops.where(onehot, coord, -1), axis=1)
        return ops.cast(low, "float32"), ops.cast(high + 1, "float32")

    x1, x2 = extent(cols)
    y1, y2 = extent(rows)
    boxes = ops.where(valid[..., None], ops.stack([x1, y1, x2, y2], axis=-1), 0.0)
    kept = ops.logical_and(labels > 0, ops.take_along_axis(valid, ops.maximum(labels - 1, 0), axis=1))
    labels = ops.where(kept, labels, 0)
    return {
        "labels": ops.reshape(labels, (-1, height, width)),
        "boxes": boxes,
        "classes": ops.cast(valid, "int32"),
        "valid": valid,
        "areas": ops.where(valid, areas, 0.0),
    }


def pixels_in_boxes(labels, instance, boxes, max_instances):
    """Pixels of instance ``instance (B, R)`` (1-based) whose centres lie in ``boxes (B, R, 4)``.

    Summed-area tables of the instance masks make this four lookups per box.
    Returns ``(B, R)`` float32.
    """
    shape = ops.shape(labels)
    batch, height, width = shape[0], shape[1], shape[2]
    slots = ops.arange(1, max_instances + 1, dtype="int32")
    onehot = ops.cast(labels[..., None] == slots, "int32")
    table = ops.cumsum(ops.cumsum(onehot, axis=1), axis=2)
    table = ops.pad(table, ((0, 0), (1, 0), (1, 0), (0, 0)))
    flat = ops.reshape(table, (-1,))
    boxes = ops.cast(boxes, "float32")
    # Pixel c has its centre c + 0.5 in [x1, x2) for c in [ceil(x1 - 0.5), ceil(x2 - 0.5)).
    lo_x = ops.clip(ops.ceil(boxes[..., 0] - 0.5), 0, ops.cast(width, "float32"))
    hi_x = ops.clip(ops.ceil(boxes[..., 2] - 0.5), 0, ops.cast(width, "float32"))
    lo_y = ops.clip(ops.ceil(boxes[..., 1] - 0.5), 0, ops.cast(height, "float32"))
    hi_y = ops.clip(ops.ceil(boxes[..., 3] - 0.5), 0, ops.cast(height, "float32"))
    hi_x, hi_y = ops.maximum(hi_x, lo_x), ops.maximum(hi_y, lo_y)
    item = ops.arange(batch, dtype="int32")[:, None]
    channel = ops.clip(ops.cast(instance, "int32") - 1, 0, max_instances - 1)

    def at(y, x):
        y, x = ops.cast(y, "int32"), ops.cast(x, "int32")
        index = ((item * (height + 1) + y) * (width + 1) + x) * max_instances + channel
        return ops.take(flat, ops.reshape(index, (-1,)))

    count = at(hi_y, hi_x) - at(lo_y, hi_x) - at(hi_y, lo_x) + at(lo_y, lo_x)
    return ops.reshape(ops.cast(count, "float32"), (-1, boxes.shape[1]))
