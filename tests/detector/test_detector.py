"""``Detector``: resolution handling, settings from cards and runs, task-aware counts."""

import json
import os
import sys

import numpy as np
import pytest

from mitoseg_tf.detector import DetectionSettings, Detector

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "detection"))
from shifted_model import darkness_model  # noqa: E402


def field_with_discs(mpp, centres_um, radius_um=3.0, size_um=(60.0, 70.0)):
    """A pale field of ``size_um`` microns at ``mpp`` with dark discs at (x, y) micron centres, drawn sub-pixel exact."""
    height, width = int(round(size_um[1] / mpp)), int(round(size_um[0] / mpp))
    # Pixel (row, col) covers [col, col + 1) x [row, row + 1) px, so its centre sits at (col + 0.5) * mpp um.
    ys, xs = (np.mgrid[:height, :width] + 0.5) * mpp
    image = np.full((height, width, 3), 230, np.uint8)
    for x, y in centres_um:
        image[(xs - x) ** 2 + (ys - y) ** 2 <= radius_um**2] = 20
    return image


@pytest.mark.parametrize("mpp", [0.2273, 0.2456, 0.5])
def test_a_figure_is_found_at_its_micron_position_whatever_the_input_pixel_size(mpp):
    centres = [(21.3, 17.9), (45.05, 40.6)]
    detector = Detector(darkness_model(), mpp=0.25, settings=DetectionSettings(min_area_um2=5.0), tile=128)
    image = field_with_discs(mpp, centres)
    prediction = detector.predict(image, mpp=mpp)
    assert prediction.image_shape == image.shape[:2]
    assert prediction.probability.shape == image.shape[:2]
    found = prediction.positions_um()
    assert len(found) == 2
    order = np.argsort(found[:, 0])
    # Against the drawn discs' own centroids (rasterising moves a centre by up to ~0.1 px): resampling in
    # and mapping back must not move a figure by more than a fifth of an input pixel.
    from skimage import measure

    drawn = [r.centroid for r in measure.regionprops(measure.label(image[..., 0] < 128))]
    drawn_um = (np.array(drawn)[:, ::-1] + 0.5) * mpp
    np.testing.assert_allclose(drawn_um, np.array(centres), atol=0.15 * mpp)
    np.testing.assert_allclose(found[order], drawn_um[np.argsort(drawn_um[:, 0])], atol=0.2 * mpp)
    for figure in prediction.figures:
        assert figure.area_um2 == pytest.approx(np.pi * 3.0**2, rel=0.15)  # measured at the network's 0.25 um/px
        ring = np.array(figure.polygon)
        assert (ring >= 0).all() and (ring[:, 0] <= image.shape[1]).all() and (ring[:, 1] <= image.shape[0]).all()


def test_the_network_sees_the_field_at_its_own_resolution(monkeypatch):
    import mitoseg_tf.detector.detector as module

    seen = []
    real = module.predict_image

    def recording(model, image, **kwargs):
        seen.append(image.shape[:2])
        return real(model, image, **kwargs)

    monkeypatch.setattr(module, "predict_image", recording)
    detector = Detector(darkness_model(), mpp=0.25, tile=64)
    prediction = detector.predict(np.full((100, 120, 3), 230, np.uint8), mpp=0.5)
    assert seen == [(200, 240)] and prediction.probability.shape == (100, 120)  # 50 x 60 um at 0.25 um/px
    Detector(darkness_model(), mpp=None, tile=64).predict(np.full((100, 120, 3), 230, np.uint8), mpp=0.5)
    assert seen[-1] == (100, 120)  # training resolution unknown: the field as given
    Detector(darkness_model(), mpp=0.25, tile=64).predict(np.full((100, 120, 3), 230, np.uint8), mpp=0.252)
    assert seen[-1] == (100, 120)  # within 1 %: not resampled


def test_settings_come_from_the_card_and_overrides_say_so():
    from mitoseg_tf.zoo.weights_card import weights_card

    for key in ("unet/mitosis", "unet/mitosis_v1"):  # the default, and the earlier settings on the same weights
        detector, card = Detector.from_weights(key), weights_card(key)
        rescoring = card.rescorer.detection
        s = detector.settings
        assert (s.pixel_threshold, s.min_area_um2, s.score_threshold) == (
            rescoring["pixel_threshold"],
            rescoring["min_area_um2"],
            rescoring["score_threshold"],
        )
        assert s.tta is {**card.detection, **rescoring}["tta"] and detector.rescored and detector.mpp == 0.25
        plain = Detector.from_weights(key, rescore=False, score_threshold=0.9)
        assert not plain.rescored and plain.settings.score_threshold == 0.9
        assert plain.settings.pixel_threshold == card.detection["pixel_threshold"]
        assert "score_threshold given" in plain.settings.chosen_by
    line = Detector.from_weights("unet/mitosis_v1").describe()
    # the settings in the order they apply
    assert (
        line.index("8-fold")
        < line.index("pixel probability")
        < line.index("um^2")
        < line.index("rescored")
        < line.index("score >=")
    )


def test_nucleus_weights_count_nuclei_not_mitoses():
    detector = Detector.from_weights("unet/monuseg")
    assert detector.object_class == "Nucleus" and not detector.rescored
    prediction = detector.with_settings(tile=64).predict(np.full((64, 64, 3), 225, np.uint8), mpp=0.25)
    density = prediction.density()
    assert "per_10hpf" not in density and density["count"] == prediction.count


def test_load_refuses_conflicting_sources(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        Detector.load(checkpoint="a.keras", weights="unet/mitosis")
    with pytest.raises(ValueError, match="needs shipped weights"):
        Detector.load(checkpoint="a.keras", rescore=True)
    with pytest.raises(ValueError, match="No shipped weights 'unet/nope'"):
        Detector.load(weights="unet/nope")
    with pytest.raises(ValueError, match="ship without a second-stage"):
        Detector.load(weights="unet/monuseg", rescore=True)
    with pytest.raises(ValueError, match="no best.keras"):
        Detector.from_run(str(tmp_path))
    with pytest.raises(
        ValueError, match="mpp: 0 is not a plausible pixel size; accepted: 0.05 to 10 microns per pixel"
    ):
        Detector(darkness_model(), mpp=0.25).predict(np.zeros((8, 8, 3), np.uint8), mpp=0)


def test_a_run_folder_gives_its_detection_settings_and_resolution(tmp_path):
    darkness_model().save(tmp_path / "best.keras")
    (tmp_path / "detection.json").write_text(json.dumps({"score_threshold": 0.9, "pixel_threshold": 0.4, "mpp": 0.5}))
    detector = Detector.from_run(str(tmp_path))
    assert detector.mpp == 0.5 and detector.settings.score_threshold == 0.9 and detector.settings.pixel_threshold == 0.4
    assert "detection.json" in detector.settings.chosen_by
