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


# Typed from the field-diameter table of the UK guidance (RCPath G148, "Pathology reporting of breast
# disease in surgical excision specimens", 2016, appendix; first published in NHSBSP 58, 2005), as
# "score 1 up to / score 2 from-to / score 3 from", not copied from the module. Checked against other
# published quotations: 0.40 mm (0-4 / 5-9 / >=10), 0.50 mm (0-7 / 8-14 / >=15, the cut-offs quoted
# for a 0.196 mm^2 field) and 0.59 mm (0-9 / 10-19 / >=20). The other rows are typed from that table
# without a second copy to compare against here.
PUBLISHED_ROWS = """
0.40 4 5-9 10    0.41 4 5-9 10    0.42 5 6-10 11   0.43 5 6-10 11   0.44 5 6-11 12
0.45 5 6-11 12   0.46 6 7-12 13   0.47 6 7-12 13   0.48 6 7-13 14   0.49 6 7-13 14
0.50 7 8-14 15   0.51 7 8-14 15   0.52 7 8-15 16   0.53 8 9-16 17   0.54 8 9-16 17
0.55 8 9-17 18   0.56 8 9-17 18   0.57 9 10-18 19  0.58 9 10-19 20  0.59 9 10-19 20
0.60 10 11-20 21 0.61 10 11-21 22 0.62 11 12-22 23 0.63 11 12-22 23 0.64 11 12-23 24
0.65 12 13-24 25 0.66 12 13-24 25 0.67 12 13-25 26 0.68 13 14-26 27 0.69 13 14-27 28
"""
CHECKED_ELSEWHERE = {0.40, 0.50, 0.59}


def _published():
    words = PUBLISHED_ROWS.split()
    rows = {}
    for diameter, one, two, three in zip(words[0::4], words[1::4], words[2::4], words[3::4]):
        low, high = map(int, two.split("-"))
        assert low == int(one) + 1 and int(three) == high + 1, diameter  # a typing slip shows here
        rows[float(diameter)] = (int(one), high)
    return rows


def test_the_table_matches_the_published_rows():
    published = _published()
    assert len(published) == 30 and CHECKED_ELSEWHERE <= set(published)
    assert NOTTINGHAM_MITOSIS_TABLE == published


@pytest.mark.parametrize("diameter", sorted(_published()))
def test_scores_change_at_the_published_boundaries(diameter):
    one, two = _published()[diameter]
    counts = (0, one, one + 1, two, two + 1, 60)
    assert [nottingham_mitotic_score(n, field_diameter_mm=diameter) for n in counts] == [1, 1, 2, 2, 3, 3]
