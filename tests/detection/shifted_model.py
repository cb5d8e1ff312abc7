"""Hand-set models whose maps are known: dark pixels are figures (detector, predict and TTA tests)."""

import keras
import numpy as np


def corner_reader():
    """probability(r, c) = darkness of the pixel 4 rows up and 4 columns right: figures land (4, -4) px off.

    Under the 8 flips / quarter turns the offset points to each of the four diagonals in turn, so the
    averaged map is centred on the figure again.
    """
    inputs = keras.Input((None, None, 3))
    centred = keras.layers.Rescaling(1.0, offset=-230.0)(inputs)  # the zero padding reads as background
    outputs = keras.layers.Conv2D(1, 9, padding="same", activation="sigmoid", name="mask")(centred)
    model = keras.Model(inputs, outputs, name="corner_reader")
    kernel = np.zeros((9, 9, 3, 1), np.float32)
    kernel[0, 8, :, 0] = -0.05 / 3  # a dark pixel (20) gives sigmoid(10.5 - 5), background sigmoid(-5)
    model.get_layer("mask").set_weights([kernel, np.array([-5.0], np.float32)])
    return model


def darkness_model():
    """probability = sigmoid(0.1 * (128 - mean RGB)): dark blobs are 'mitoses'; stride 1, any size."""
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(inputs)
    model = keras.Model(inputs, outputs, name="darkness")
    model.get_layer("mask").set_weights([np.full((1, 1, 3, 1), -0.1 / 3, np.float32), np.array([12.8], np.float32)])
    return model
