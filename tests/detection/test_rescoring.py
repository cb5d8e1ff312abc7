"""Rescoring candidate figures with a window classifier: window cutting, 8-fold averaging, new scores."""

import keras
import numpy as np
import pytest

from mitoseg_tf.detection import Figure
from mitoseg_tf.detection.rescoring import classify_centres, cut_windows, rescore_figures


def corner_model(window):
    """probability = the window's top-left red value / 255: not rotation invariant, so averaging shows."""
    inputs = keras.Input((window, window, 3))
    corner = keras.layers.Lambda(lambda x: x[:, 0, 0, :1] / 255.0, output_shape=(1,))(inputs)
    return keras.Model(inputs, corner)


def test_windows_are_centred_and_mirrored_like_numpy_reflect_padding():
    image = np.arange(10 * 12 * 3).reshape(10, 12, 3)
    padded = np.pad(image, ((5, 5), (5, 5), (0, 0)), mode="reflect")
    windows = cut_windows(image, [(0.0, 0.0), (4.6, 7.4), (9.0, 11.0)], 6)
    # centre (r, c) rounds to the pixel at index size // 2 = 3 of the window: rows r-3 .. r+2
    for window, (r, c) in zip(windows, [(0, 0), (5, 7), (9, 11)]):
        np.testing.assert_array_equal(window, padded[r + 5 - 3 : r + 5 + 3, c + 5 - 3 : c + 5 + 3])
    assert cut_windows(image, np.zeros((0, 2)), 6).shape == (0, 6, 6, 3)
    with pytest.raises(ValueError, match="one \\(height, width, channels\\) image"):
        cut_windows(image[..., 0], [(1, 1)], 4)


def test_averaging_over_the_8_symmetries_reads_all_four_corners():
    image = np.zeros((20, 20, 3), np.uint8)
    # the 4x4 window at centre (10, 10) spans rows/cols 8..11; its corners get 40, 80, 120, 160
    image[8, 8, 0], image[8, 11, 0], image[11, 8, 0], image[11, 11, 0] = 40, 80, 120, 160
    model = corner_model(4)
    plain = classify_centres(model, image, [(10, 10)], tta=False)
    averaged = classify_centres(model, image, [(10, 10)])
    # each corner comes to the top left under two of the 8 transforms
    np.testing.assert_allclose(plain, [40 / 255], rtol=1e-6)
    np.testing.assert_allclose(averaged, [(40 + 80 + 120 + 160) / 4 / 255], rtol=1e-6)
    assert classify_centres(model, image, np.zeros((0, 2))).shape == (0,)


def test_rescored_figures_keep_everything_but_the_score_and_are_ranked_by_it():
    image = np.zeros((30, 30, 3), np.uint8)
    image[5:9, 5:9, 0] = 200  # the window at (7, 7) has 200 in every corner
    image[20:24, 20:24, 0] = 50
    figures = [
        Figure(centroid=(7.0, 7.0), area_px=16, area_um2=1.0, score=0.1, polygon=(), bbox=(5, 5, 9, 9)),
        Figure(centroid=(22.0, 22.0), area_px=16, area_um2=1.0, score=0.9, polygon=(), bbox=(20, 20, 24, 24)),
    ]
    rescored = rescore_figures(corner_model(4), image, figures[::-1], batch_size=1)
    assert [f.centroid for f in rescored] == [(7.0, 7.0), (22.0, 22.0)]
    assert rescored[0].score == pytest.approx(200 / 255, rel=1e-6) and rescored[1].score == pytest.approx(
        50 / 255, rel=1e-6
    )
    assert rescored[0].bbox == figures[0].bbox and rescored[0].area_px == 16
