"""Training the second-stage figure classifier (``mitoseg_tf.models.build_figure_classifier``) on windows.

The classifier's data is not a segmentation source: it is a stack of positive
windows (a figure at the centre) and one of negatives (anything else at the
centre), each a little larger than the classifier's input so that a random
crop moves the centre by a few pixels. Batches are balanced (half of each),
rotated, mirrored and colour-jittered with the segmentation recipes' HED and
HSV jitter, in a ``tf.data`` pipeline. The output unit and the loss are
float32 under any precision policy.

Example:
    >>> model = train_figure_classifier(positives, negatives, window=48, epochs=15)
"""

import keras
import numpy as np
import tensorflow as tf

from mitoseg_tf.data.pipeline import _hsv_jitter, _stain_jitter
from mitoseg_tf.models.figure_classifier import build_figure_classifier

# The recipe the shipped classifier was trained with (docs/RESULTS.md).
DEFAULTS = dict(epochs=15, steps_per_epoch=200, batch_size=64, learning_rate=1e-3, stain_jitter=0.2, hsv_jitter=0.1)


def _check_windows(positives, negatives, window):
    for what, stack in (("positives", positives), ("negatives", negatives)):
        if stack.ndim != 4 or stack.shape[-1] != 3 or stack.shape[1] != stack.shape[2]:
            raise ValueError(f"{what} must be square RGB windows (N, S, S, 3); got shape {stack.shape}.")
        if len(stack) == 0:
            raise ValueError(f"{what} is empty: the classifier needs windows of both kinds.")
    if positives.shape[1] != negatives.shape[1]:
        raise ValueError(
            f"positives and negatives must be windows of one size; got {positives.shape[1]} and {negatives.shape[1]} px."
        )
    if positives.shape[1] < window:
        raise ValueError(f"windows of {positives.shape[1]} px cannot be cropped to the classifier's {window} px.")


def window_dataset(positives, negatives, *, window, batch_size, seed, stain_jitter, hsv_jitter):
    """Endless balanced, augmented batches ``(images 0-255 float32 (B, window, window, 3), labels (B, 1))``."""
    positives, negatives = np.asarray(positives), np.asarray(negatives)
    _check_windows(positives, negatives, window)
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch_size must be an even number >= 2 (half positives, half negatives); got {batch_size}.")

    def endless(stack, label, offset):
        ds = tf.data.Dataset.from_tensor_slices(stack).shuffle(len(stack), seed=seed + offset).repeat()
        return ds.map(lambda x: (x, tf.constant(label, tf.float32)))

    def augment(index, example):
        image, label = example
        key = tf.stack([tf.constant(seed, tf.int64), index])
        image = tf.image.stateless_random_crop(tf.cast(image, tf.float32), (window, window, 3), key)
        image = tf.image.rot90(image, tf.random.stateless_uniform((), key + 1, 0, 4, tf.int32))
        image = tf.image.stateless_random_flip_left_right(image, key + 2)
        if stain_jitter:
            image = _stain_jitter(image, tf.cast(key + 3, tf.int32), stain_jitter)
        if hsv_jitter:
            image = _hsv_jitter(image, tf.cast(key + 5, tf.int32), hsv_jitter)
        return image, tf.reshape(label, (1,))

    mixed = tf.data.Dataset.sample_from_datasets(
        [endless(positives, 1.0, 0), endless(negatives, 0.0, 1)], seed=seed, stop_on_empty_dataset=False
    )
    return (
        mixed.enumerate()
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(2)
    )


def train_figure_classifier(positives, negatives, *, window=48, seed=0, verbose=2, **options):
    """A classifier trained on uint8 windows ``positives`` and ``negatives`` (N, S, S, 3) with S >= ``window``.

    ``options`` override ``DEFAULTS`` (epochs, steps_per_epoch, batch_size,
    learning_rate with cosine decay, stain_jitter, hsv_jitter). Returns the
    trained ``keras.Model``; its history is ``model.history.history``.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown figure-classifier option(s) {unknown}; accepted: {', '.join(DEFAULTS)}.")
    o = {**DEFAULTS, **options}
    data = window_dataset(
        positives,
        negatives,
        window=window,
        batch_size=o["batch_size"],
        seed=seed,
        stain_jitter=o["stain_jitter"],
        hsv_jitter=o["hsv_jitter"],
    )
    keras.utils.set_random_seed(seed)
    model = build_figure_classifier(window=window)
    schedule = keras.optimizers.schedules.CosineDecay(o["learning_rate"], o["epochs"] * o["steps_per_epoch"])
    model.compile(
        keras.optimizers.Adam(schedule), "binary_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc")]
    )
    model.fit(data, epochs=o["epochs"], steps_per_epoch=o["steps_per_epoch"], shuffle=False, verbose=verbose)
    return model
