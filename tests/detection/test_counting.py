"""Counts, densities and the Nottingham mitotic score on constructed inputs."""

import math

import pytest

from mitoseg_tf.detection import (
    NOTTINGHAM_MITOSIS_TABLE,
    count_density,
    field_area_mm2,
    image_area_mm2,
    nottingham_mitotic_score,
)


def test_image_area_and_densities():
    # 2000 x 2000 px at 0.25 um/px = 0.5 mm x 0.5 mm = 0.25 mm^2
    assert image_area_mm2(2000, 2000, 0.25) == pytest.approx(0.25)
    density = count_density(5, 0.25)
    assert density["per_mm2"] == pytest.approx(20.0)
    assert density["per_10hpf"] == pytest.approx(40.0)  # 2 mm^2 by default
    assert count_density(5, 0.25, hpf10_area_mm2=2.37)["per_10hpf"] == pytest.approx(47.4)
    with pytest.raises(ValueError, match="mpp"):
        image_area_mm2(10, 10, 0)


def test_nottingham_score_on_counts_in_ten_fields():
    # 0.50 mm fields: <= 7 -> 1, 8-14 -> 2, >= 15 -> 3
    assert [nottingham_mitotic_score(n) for n in (0, 7, 8, 14, 15, 40)] == [1, 1, 2, 2, 3, 3]
    # 0.59 mm fields (the CAP worked example): < 10 -> 1, 10-19 -> 2, >= 20 -> 3
    assert [nottingham_mitotic_score(n, field_diameter_mm=0.59) for n in (9, 10, 19, 20)] == [1, 2, 2, 3]
    assert [nottingham_mitotic_score(n, field_diameter_mm=0.40) for n in (4, 5, 9, 10)] == [1, 2, 2, 3]


def test_nottingham_score_rescales_a_count_in_an_area():
    ten_fields = 10 * field_area_mm2(0.50)
    assert ten_fields == pytest.approx(10 * math.pi * 0.25**2)
    # 7 figures in exactly ten fields' area -> 7 -> score 1; in half that area -> 14 -> score 2
    assert nottingham_mitotic_score(7, ten_fields) == 1
    assert nottingham_mitotic_score(7, ten_fields / 2) == 2
    assert nottingham_mitotic_score(8, ten_fields / 2) == 3  # 16


def test_custom_table_and_unknown_diameter():
    table = {0.5: (2, 4)}
    assert [nottingham_mitotic_score(n, table=table) for n in (2, 3, 4, 5)] == [1, 2, 2, 3]
    with pytest.raises(ValueError, match="0.40-0.69|0.4-0.69"):
        nottingham_mitotic_score(3, field_diameter_mm=0.9)


def test_table_cutoffs_grow_with_the_field():
    diameters = sorted(NOTTINGHAM_MITOSIS_TABLE)
    for a, b in zip(diameters, diameters[1:]):
        assert NOTTINGHAM_MITOSIS_TABLE[a][0] <= NOTTINGHAM_MITOSIS_TABLE[b][0]
        assert NOTTINGHAM_MITOSIS_TABLE[a][1] <= NOTTINGHAM_MITOSIS_TABLE[b][1]
