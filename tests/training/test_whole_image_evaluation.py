"""evaluate_whole_images scores sliding-window predictions exactly like evaluate scores batches."""

import numpy as np

from mitoseg_tf.metrics import pixel
from mitoseg_tf.training.evaluate import evaluate, evaluate_whole_images
from mitoseg_tf.zoo import build


def test_whole_image_scores_match_a_numpy_confusion_of_the_stitched_map():
    from mitoseg_tf.inference import predict_image

    model = build("unet", base_filters=4, input_shape=(None, None, 3))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 64, 96, 3)).astype(np.uint8)
    masks = np.zeros((2, 64, 96), np.uint8)
    masks[:, 10:30, 20:50] = 1
    examples = [{"image": i, "mask": m[..., None]} for i, m in zip(images, masks)]
    result = evaluate_whole_images(model, examples, tile=64)
    labels = np.stack([(predict_image(model, i, tile=64) > 0.5).astype(np.int64) for i in images])
    cm = pixel.confusion_matrices(masks.astype(np.int64), labels, 2).sum(0)
    assert result["num_images"] == 2
    np.testing.assert_allclose(
        result["model"]["pooled"]["mitosis_dice"], pixel.class_dice(cm, class_id=1, zero_division=1.0)
    )
    assert result["all_background"]["pooled"]["mitosis_dice"] == 0.0


def test_one_tile_image_agrees_with_batch_evaluation():
    model = build("unet", base_filters=4, input_shape=(None, None, 3))
    image = np.random.default_rng(1).integers(0, 255, (1, 64, 64, 3)).astype(np.uint8)
    mask = np.zeros((1, 64, 64, 1), np.int32)
    mask[0, 5:40, 5:40] = 1
    # margin=0: no reflected context around the one tile, so the stitched map is the plain forward pass
    whole = evaluate_whole_images(model, [{"image": image[0], "mask": mask[0]}], tile=64, margin=0)
    batch = evaluate(model, [(image.astype("float32"), mask)])
    for key, value in batch["model"]["pooled"].items():
        np.testing.assert_allclose(whole["model"]["pooled"][key], value, atol=1e-6)
