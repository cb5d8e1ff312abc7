"""Sliding-window prediction, detection and rescoring run on the JAX backend with TensorFlow blocked."""

import jax_without_tensorflow

SCRIPT = """
    import json, sys

    import keras
    import numpy as np
    from mitoseg_tf.layers.checks import InputSizeCheck
    from mitoseg_tf.inference import predict_image
    from mitoseg_tf.detection import Figure, extract_figures, figures_to_geojson
    from mitoseg_tf.detection.evaluation import evaluate_detection
    from mitoseg_tf.detection.rescoring import rescore_figures
    from mitoseg_tf.models.figure_classifier import build_figure_classifier

    # A small model (fast to compile) with the zoo's size check, so the stride lookup runs too;
    # square tiles keep TTA to one compiled shape.
    inputs = keras.Input((None, None, 3))
    x = InputSizeCheck(16, model_name="small")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255)(x))
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.UpSampling2D()(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="mask")(x))
    from mitoseg_tf.models.outputs import network_stride
    assert network_stride(model) == 16
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    probability = predict_image(model, image, tile=32, overlap=0.25, batch_size=6, margin=0, tta=True)
    figures = extract_figures(probability, mpp=0.5, min_area_um2=0.0)
    # fixed candidates: the untrained model's own figures vary with its random initialisation
    candidates = [Figure((r, c), 16, 4.0, 0.5, (), (r - 2, c - 2, r + 2, c + 2)) for r, c in ((10.0, 10.0), (40.0, 65.0))]
    rescored = rescore_figures(build_figure_classifier(window=16, widths=(4, 8)), image, candidates)
    mask = np.zeros((45, 70), np.uint8); mask[5:9, 5:9] = 1
    detection = evaluate_detection(model, [{"image": image, "mask": mask}], mpp=0.5, tile=32, margin=0, batch_size=6)
    print("REPORT" + json.dumps({
        "backend": keras.backend.backend(),
        "shape": list(probability.shape),
        "finite": bool(np.isfinite(probability).all()),
        "features": len(figures_to_geojson(figures)["features"]) == len(figures),
        "rescored": len(rescored) == 2 and all(0 < f.score < 1 and f.score != 0.5 for f in rescored),
        "fn": detection["tp"] + detection["fn"],
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }))
    """


def test_sliding_window_and_detection_need_no_tensorflow():
    jax_without_tensorflow.need("jax")
    report = jax_without_tensorflow.run(SCRIPT)
    assert report == {
        "backend": "jax",
        "shape": [45, 70],
        "finite": True,
        "features": True,
        "rescored": True,
        "fn": 1,  # the one true figure is either found or missed
        "tensorflow_loaded": False,
    }
