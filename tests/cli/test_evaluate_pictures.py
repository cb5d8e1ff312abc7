"""``mitoseg evaluate --out``: one picture per image with its true positives, false positives and missed figures."""

import os

import numpy as np
import pytest
from PIL import Image

from mitoseg_tf.cli.main import main, write_evaluation_pictures
from mitoseg_tf.detection.drawing import EVALUATION_STYLE, marker_style

GREY = 128


def _near(picture, centre, colour, radius):
    r, c = centre
    box = picture[r - radius - 3 : r + radius + 4, c - radius - 3 : c + radius + 4].astype(int)
    return int(np.all(np.abs(box - np.array(colour)) <= 10, axis=-1).sum())


def test_each_detection_is_drawn_as_what_matching_made_it(tmp_path):
    image = np.full((300, 300, 3), GREY, np.uint8)
    centres = np.array([[100, 100], [200, 200], [50, 250]], np.float64)
    scores = np.array([0.9, 0.8, 0.1])  # the last is below the threshold: not a detection at all
    truth = np.array([[102, 100], [250, 60]], np.float32)
    source = [{"image": image, "id": b"field1"}]
    paths = write_evaluation_pictures(source, [(centres, scores, truth, 10.0)], 0.5, str(tmp_path / "pictures"))
    assert paths == [str(tmp_path / "pictures" / "field1_evaluation.png")]
    picture = np.asarray(Image.open(paths[0]))
    radius = marker_style(image.shape)["radius"]
    colour = {kind: style[0] for kind, style in EVALUATION_STYLE.items()}
    assert _near(picture, (100, 100), colour["true positive"], radius) > 10
    assert _near(picture, (200, 200), colour["false positive"], radius) > 10
    assert _near(picture, (250, 60), colour["missed"], radius) > 10
    assert _near(picture, (50, 250), colour["false positive"], radius) == 0
    assert _near(picture, (100, 100), colour["false positive"], radius) == 0


def test_evaluate_writes_a_picture_per_image(tmp_path, capsys):
    from mitoseg_tf.zoo import build

    checkpoint = str(tmp_path / "best.keras")
    build("unet", base_filters=4, input_shape=(None, None, 3), dropout=0.0).save(checkpoint)
    out = tmp_path / "pictures"
    code = main(["evaluate", checkpoint, "--num-examples", "2", "--batch-size", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    pictures = sorted(os.listdir(out))
    assert len(pictures) == 2 and all(p.endswith("_evaluation.png") for p in pictures)
    assert "2 picture(s)" in capsys.readouterr().out


def test_evaluate_out_that_is_a_file_is_one_clear_error(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    assert main(["evaluate", str(tmp_path / "best.keras"), "--out", str(taken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]


def test_true_centres_of_the_wrong_shape_are_refused(tmp_path):
    source = [{"image": np.zeros((20, 20, 3), np.uint8)}]
    with pytest.raises(ValueError, match="shape"):
        write_evaluation_pictures(
            source, [(np.zeros((0, 2)), np.zeros(0), np.array([(1.0, 2.0, 3.0)]), 5.0)], 0.5, str(tmp_path)
        )
