"""The second-stage figure classifier as a SavedModel of its own: candidate windows in, probability out.

The segmentation SavedModel gives probability maps; finding the candidate
blobs (connected components) and cutting a window at each is array work a
deployer does with any image library, so it stays outside the graph. The
classifier's graph takes those windows and averages its probability over the
8 flips and quarter turns, as ``mitoseg_tf.detection.classify_centres`` does.

    >>> export_figure_classifier(load_rescorer("unet", "mitosis"), "exported/rescorer")
    >>> tf.saved_model.load("exported/rescorer").signatures["serving_default"](windows=w)["probability"]
"""

import json
import os
import tempfile

import keras

from mitoseg_tf.export.saved_model import CARD_FILE, _tf, tta_view
from mitoseg_tf.inference.tta import NUM_TRANSFORMS


def export_figure_classifier(classifier, out_dir, *, card=None):
    """Write ``classifier`` (``build_figure_classifier``) to ``out_dir``; returns the model card written in its assets.

    Signature ``serving_default``: ``windows`` uint8 ``[batch, W, W, 3]`` (RGB
    0-255, each centred on a candidate) -> ``probability`` float32 ``[batch]``.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"export needs the TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}.")
    window = classifier.input_shape[1]
    if classifier.input_shape[1:] != (window, window, 3) or classifier.output_shape != (None, 1):
        raise ValueError(
            f"export_figure_classifier takes a window classifier (W, W, 3) -> (1,); got {classifier.input_shape} -> "
            f"{classifier.output_shape}."
        )
    tf = _tf()

    @tf.function(input_signature=[tf.TensorSpec([None, window, window, 3], tf.uint8, name="windows")])
    def serve(windows):
        x = tf.cast(windows, tf.float32)
        total = 0.0
        for k in range(NUM_TRANSFORMS):  # a score, unlike a map, needs no undoing
            total += classifier(tta_view(x, k), training=False)[:, 0]
        return {"probability": total / NUM_TRANSFORMS}

    model_card = {
        "name": classifier.name,
        "input": {
            "windows": f"uint8 [batch, {window}, {window}, 3], RGB 0-255, one window centred on each candidate figure"
        },
        "output": {
            "probability": "float32 [batch]: probability of a mitotic figure at the centre, mean of the 8 flips / quarter turns"
        },
        **(card or {}),
    }
    with tempfile.TemporaryDirectory() as scratch:
        card_path = os.path.join(scratch, CARD_FILE)
        with open(card_path, "w") as fh:
            json.dump(model_card, fh, indent=2)
        module = tf.Module()
        module.model_variables = [v.value if hasattr(v, "value") else v for v in classifier.variables]
        module.serve = serve
        module.model_card = tf.saved_model.Asset(card_path)
        tf.saved_model.save(module, os.fspath(out_dir), signatures={"serving_default": serve})
    return model_card
