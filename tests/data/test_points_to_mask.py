"""Point labels to masks: radius in microns, HED refinement, points outside the image."""

import numpy as np
import pytest

from mitoseg_tf.data.points import boxes_to_points, check_points, points_to_mask


@pytest.mark.parametrize("mpp", [0.25, 0.5])
def test_disk_radius_is_in_microns(mpp):
    mask = points_to_mask([[50.0, 50.0]], (101, 101), mpp=mpp, radius_um=5.0)
    radius_px = 5.0 / mpp
    # pixel count of a digital disk vs its area: within 3 % at these radii
    assert mask.sum() == pytest.approx(np.pi * radius_px**2, rel=0.03)
    rows, cols = np.nonzero(mask)
    assert rows.max() - 50 == int(radius_px) and 50 - cols.min() == int(radius_px)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}


def test_disks_clip_at_the_border_and_union():
    mask = points_to_mask([[0.0, 0.0], [0.0, 2.0]], (10, 10), mpp=1.0, radius_um=1.0)
    expected = np.zeros((10, 10), np.uint8)
    expected[0, 0:4] = 1
    expected[1, 0] = expected[1, 2] = 1
    np.testing.assert_array_equal(mask, expected)


def test_refinement_keeps_the_hematoxylin_dense_blob():
    image = np.full((61, 61, 3), (235, 190, 215), np.uint8)  # eosin-pink background
    rr, cc = np.mgrid[:61, :61]
    blob = (rr - 30) ** 2 + ((cc - 28) / 2) ** 2 <= 16  # elongated dark-purple figure, inside the disk
    image[blob] = (60, 30, 110)
    mask = points_to_mask([[30.0, 30.0]], (61, 61), mpp=0.5, radius_um=8.0, image=image, refine=True)
    plain = points_to_mask([[30.0, 30.0]], (61, 61), mpp=0.5, radius_um=8.0)
    np.testing.assert_array_equal(mask.astype(bool), blob)
    assert plain.sum() > 3 * blob.sum()


def test_refinement_needs_the_image():
    with pytest.raises(ValueError, match="needs the RGB image"):
        points_to_mask([[5.0, 5.0]], (10, 10), mpp=0.25, refine=True)


def test_points_outside_the_image_are_an_error():
    with pytest.raises(ValueError, match=r"outside the 10x20 image .*1 of 2"):
        check_points([[1, 1], [3, 25]], (10, 20), "a.csv")


def test_boxes_to_points_are_row_col_centres():
    np.testing.assert_array_equal(boxes_to_points([[10, 20, 60, 70]]), [[45.0, 35.0]])
