"""Whole-image prediction for any zoo model: overlapping tiles, Gaussian blending, batched tiles.

Backend-agnostic: NumPy around ``model.predict_on_batch`` (no TensorFlow
import), so it runs on the JAX and PyTorch backends too. Memory for the
network is bounded by ``batch_size`` tiles whatever the image size; the image,
its padded copy and two float32 accumulators are the only full-size arrays.

    >>> from mitoseg_tf.inference import predict_image
    >>> probability = predict_image(model, image_uint8, tile=512, overlap=0.25, batch_size=4)
"""

from typing import TYPE_CHECKING

import numpy as np

from mitoseg_tf.defaults import DEFAULT_WINDOW_BATCH_SIZE, DEFAULT_WINDOW_OVERLAP, DEFAULT_WINDOW_TILE
from mitoseg_tf.inference import tta as tta_lib
from mitoseg_tf.inference.tiling import pad_image, plan_tiles

if TYPE_CHECKING:  # annotations only: this module runs on any Keras backend and imports Keras late
    from collections.abc import Callable

    import keras


def fixed_input_size(model):
    """The model's fixed input (height, width), or None when it takes any size."""
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else (None, None, None, None)
    if shape[1] is None and shape[2] is None:
        return None
    if shape[1] is None or shape[2] is None:
        raise ValueError(
            f"{model.name!r} fixes only one input side {shape[1:3]}; sliding-window needs both or neither."
        )
    return int(shape[1]), int(shape[2])


def probability_fn(model):
    """``f(tiles float32 (B, h, w, 3) in 0-255) -> mitosis probability float32 (B, h, w)`` for a zoo model.

    Uses the primary ``mask`` output; logits get their softmax / sigmoid; a
    multi-class map gives class 1 (mitosis), a one-channel map its sigmoid
    probability.
    """
    # Start-up: importing mitoseg_tf.models imports Keras (and TensorFlow on its default backend); inference and
    # detection import without it, and whoever holds a model has loaded Keras already.
    from mitoseg_tf.models.outputs import mitosis_probability, primary_probabilities

    def predict(tiles):
        return mitosis_probability(primary_probabilities(model, tiles))

    return predict


def check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"predict_image takes one RGB image of shape (height, width, 3); got shape {image.shape}.")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"predict_image: the image is empty (shape {image.shape}).")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"predict_image takes uint8 (0-255) or float (0-255) pixels; got dtype {image.dtype}.")
    return image


def _tile_batches(plan, batch_size):
    positions = plan.positions()
    for start in range(0, len(positions), batch_size):
        yield positions[start : start + batch_size]


def stitch(image, predict_batch, plan, *, batch_size=DEFAULT_WINDOW_BATCH_SIZE, tta=False):
    """Run ``predict_batch`` over the tiles of ``plan`` and blend them into one (H, W) float32 map.

    The stitching core, separate from any model so a benchmark can time it:
    ``predict_batch(tiles float32 (B, h, w, 3)) -> (B, h, w)`` is all it needs.
    With ``tta`` every batch is also predicted under the 7 other flips /
    rotations and the 8 maps are averaged after undoing each transform.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    padded = pad_image(check_image(image), plan)
    th, tw = plan.tile_shape
    accumulated = np.zeros(plan.padded_shape, np.float32)
    weight_sum = np.zeros(plan.padded_shape, np.float32)
    transforms = range(tta_lib.NUM_TRANSFORMS) if tta else (0,)
    for positions in _tile_batches(plan, batch_size):
        tiles = np.stack([padded[r : r + th, c : c + tw] for r, c in positions]).astype(np.float32)
        probability = np.zeros((len(positions), th, tw), np.float32)
        for k in transforms:
            out = np.asarray(predict_batch(np.ascontiguousarray(tta_lib.forward(tiles, k))), np.float32)
            out = tta_lib.inverse(out, k)
            if out.shape != probability.shape:
                raise ValueError(
                    f"the model returned maps of shape {out.shape[1:]} for tiles of {th}x{tw}; sliding-window "
                    f"prediction needs an output at the input resolution."
                )
            probability += out
        if tta:
            probability /= tta_lib.NUM_TRANSFORMS
        for (r, c), tile_probability in zip(positions, probability):
            weights = plan.weights(r, c)
            accumulated[r : r + th, c : c + tw] += tile_probability * weights
            weight_sum[r : r + th, c : c + tw] += weights
    height, width = plan.image_shape
    m = plan.margin
    return accumulated[m : m + height, m : m + width] / weight_sum[m : m + height, m : m + width]


def predict_image(
    model: "keras.Model",
    image: np.ndarray,
    *,
    tile: int | tuple[int, int] = DEFAULT_WINDOW_TILE,
    overlap: float = DEFAULT_WINDOW_OVERLAP,
    batch_size: int = DEFAULT_WINDOW_BATCH_SIZE,
    tta: bool = False,
    margin: int | None = None,
    trim: int = 0,
    predict_batch: "Callable[[np.ndarray], np.ndarray] | None" = None,
) -> np.ndarray:
    """Mitosis probability map (H, W) float32 of one RGB image of any size.

    Args:
        model: a zoo model (any backend); its primary ``mask`` output is used.
        image: uint8 or float (H, W, 3), RGB 0-255.
        tile: tile side (or (height, width)), a multiple of the network stride;
            ignored for a model with a fixed input size (its size is the tile).
        overlap: fraction of a tile shared with each neighbour.
        batch_size: tiles per forward pass (bounds the network's memory).
        tta: average over the 8 flips / quarter turns.
        margin, trim: see ``tiling.plan_tiles`` (reflect context at the image
            border; inner tile edges given no weight).
        predict_batch: ``f(tiles float32 (B, h, w, 3)) -> (B, h, w)`` that runs
            ``model`` elsewhere (``inference.runtimes.batch_predictor``); None:
            Keras' own ``predict_on_batch``.

    Returns:
        The foreground probability, float32 (H, W), the image's height and width.

    Raises:
        ValueError: the image is not one RGB image of uint8 or float pixels, a
            tiling option is out of range, the model's output is not at the input
            resolution, or ``tta`` with a model of fixed non-square input.
    """
    from mitoseg_tf.models.outputs import network_stride  # start-up: see probability_fn

    image = check_image(image)
    fixed = fixed_input_size(model)
    stride = network_stride(model)
    if tta and fixed is not None and fixed[0] != fixed[1]:
        raise ValueError(f"tta rotates tiles, so it needs square tiles; {model.name!r} takes only {fixed}.")
    plan = plan_tiles(image.shape, tile, overlap, stride=stride, margin=margin, trim=trim, fixed_tile=fixed)
    return stitch(image, predict_batch or probability_fn(model), plan, batch_size=batch_size, tta=tta)
