"""Training the figure classifier from stacks of windows: balanced augmented batches, bad input, learning."""

import numpy as np
import pytest

from mitoseg_tf.detection.rescoring import classify_centres
from mitoseg_tf.training.figure_classifier import train_figure_classifier, window_dataset


def stacks(n, size=24, seed=0):
    """Positives: a dark disc at the centre of pale noise; negatives: the same noise with the disc off-centre."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[:size, :size]
    positives = rng.integers(180, 230, (n, size, size, 3)).astype(np.uint8)
    negatives = rng.integers(180, 230, (n, size, size, 3)).astype(np.uint8)
    centre = (rows - size // 2) ** 2 + (cols - size // 2) ** 2 <= 9
    corner = (rows - 3) ** 2 + (cols - 3) ** 2 <= 9
    positives[:, centre] = (60, 20, 90)
    negatives[:, corner] = (60, 20, 90)
    return positives, negatives


def test_batches_are_half_positive_cropped_and_still_uint8_range():
    positives, negatives = stacks(6)
    images, labels = next(
        iter(window_dataset(positives, negatives, window=16, batch_size=8, seed=0, stain_jitter=0.2, hsv_jitter=0.1))
    )
    images, labels = images.numpy(), labels.numpy()
    assert images.shape == (8, 16, 16, 3) and labels.shape == (8, 1)
    assert 0.0 <= images.min() and images.max() <= 255.0
    # sampled at random with equal weights: both kinds appear in 64 draws
    labels = np.concatenate(
        [
            b.numpy()
            for _, b in window_dataset(
                positives, negatives, window=16, batch_size=8, seed=0, stain_jitter=0, hsv_jitter=0
            ).take(8)
        ]
    )
    assert set(np.unique(labels)) == {0.0, 1.0} and 0.3 < labels.mean() < 0.7


@pytest.mark.parametrize(
    "positives, negatives, window, message",
    [
        (np.zeros((2, 24, 24, 3)), np.zeros((0, 24, 24, 3)), 16, "negatives is empty"),
        (np.zeros((2, 24, 20, 3)), np.zeros((2, 24, 24, 3)), 16, "square RGB windows"),
        (np.zeros((2, 24, 24, 3)), np.zeros((2, 32, 32, 3)), 16, "windows of one size"),
        (np.zeros((2, 24, 24, 3)), np.zeros((2, 24, 24, 3)), 32, "cannot be cropped"),
    ],
)
def test_bad_window_stacks_are_refused(positives, negatives, window, message):
    with pytest.raises(ValueError, match=message):
        window_dataset(positives, negatives, window=window, batch_size=8, seed=0, stain_jitter=0, hsv_jitter=0)


def test_unknown_option_is_refused():
    positives, negatives = stacks(2)
    with pytest.raises(ValueError, match="unknown figure-classifier option.*accepted: epochs"):
        train_figure_classifier(positives, negatives, window=16, epoch=3)


def test_a_few_hundred_steps_separate_centred_from_off_centre_discs():
    positives, negatives = stacks(64)
    model = train_figure_classifier(
        positives,
        negatives,
        window=16,
        seed=0,
        verbose=0,
        epochs=4,
        steps_per_epoch=40,
        batch_size=16,
        learning_rate=3e-3,
    )
    test_pos, test_neg = stacks(16, seed=1)
    # windows of 16 px cut at the stored windows' centres: the disc centred, or only its corner blob far away
    centre = [(12.0, 12.0)]
    pos = np.concatenate([classify_centres(model, w, centre) for w in test_pos])
    neg = np.concatenate([classify_centres(model, w, centre) for w in test_neg])
    assert pos.min() > neg.max(), (pos, neg)
