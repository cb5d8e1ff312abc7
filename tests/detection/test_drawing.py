"""Pictures of detections: markers where the figures are, sizes that follow the image, the gallery's order."""

import numpy as np
import pytest

from mitoseg_tf.detection import drawing
from mitoseg_tf.detection.drawing import draw_evaluation, draw_figures, gallery, marker_style, overview
from mitoseg_tf.detection.figures import Figure

GREY = 128


def _figure(row, col, score, half=4):
    return Figure(
        centroid=(float(row), float(col)),
        area_px=(2 * half) ** 2,
        area_um2=4.0,
        score=score,
        polygon=(),
        bbox=(row - half, col - half, row + half, col + half),
    )


def _grey(side):
    return np.full((side, side, 3), GREY, np.uint8)


def _is(pixels, colour, tol=40):
    return np.all(np.abs(pixels.astype(int) - np.array(colour)) <= tol, axis=-1)


def _ring_pixels(picture, centre, radius, colour):
    """How many pixels of ``colour`` lie within 2 px of the circle of ``radius`` around ``centre``."""
    rows, cols = np.mgrid[: picture.shape[0], : picture.shape[1]]
    distance = np.hypot(rows - centre[0], cols - centre[1])
    return int(_is(picture[np.abs(distance - radius) <= 2], colour).sum())


def test_rings_are_drawn_around_each_figure_and_nowhere_else():
    image = _grey(400)
    figures = [_figure(100, 100, 0.9), _figure(300, 250, 0.4)]
    picture = draw_figures(image, figures)
    colour = drawing.CLASS_COLOURS["Mitosis"]
    radius = marker_style(image.shape)["radius"]
    for f in figures:
        assert _ring_pixels(picture, f.centroid, radius, colour) > 20
        r, c = map(int, f.centroid)
        assert np.array_equal(picture[r, c], image[r, c])  # the figure itself is left visible
    assert not _is(picture[180:220, 300:380], colour).any()  # far from both figures
    assert picture.dtype == np.uint8 and picture.shape == image.shape
    assert np.array_equal(image, _grey(400))  # the input is not drawn on


def test_nucleus_figures_get_their_own_colour():
    picture = draw_figures(_grey(200), [_figure(100, 100, 0.5)], class_name="Nucleus")
    assert _ring_pixels(picture, (100, 100), marker_style((200, 200))["radius"], drawing.CLASS_COLOURS["Nucleus"]) > 10
    assert not _is(picture, drawing.CLASS_COLOURS["Mitosis"], tol=10).any()


def test_the_score_is_written_beside_the_ring():
    image = _grey(400)
    picture = draw_figures(image, [_figure(200, 100, 0.87)])
    radius = marker_style(image.shape)["radius"]
    right = picture[185:215, 100 + radius + 3 : 100 + radius + 60]
    left = picture[185:215, 100 - radius - 60 : 100 - radius - 3]
    assert (right != GREY).any(axis=-1).sum() > 30
    assert (left == GREY).all()


def test_a_score_at_the_right_edge_is_written_inside_the_image():
    image = _grey(300)
    picture = draw_figures(image, [_figure(150, 295, 0.5)])
    radius = marker_style(image.shape)["radius"]
    assert (picture[140:160, 295 - radius - 50 : 295 - radius - 2] != GREY).any(axis=-1).sum() > 20


def test_marker_sizes_grow_with_the_image():
    small, large = marker_style((256, 256)), marker_style((2084, 2084))
    assert large["radius"] > 2 * small["radius"]
    assert large["width"] > small["width"] and large["font_size"] > small["font_size"]
    # On a whole field the ring is thick enough to survive shrinking the picture to a screen.
    assert large["width"] >= 4 and large["radius"] >= 25


def test_overview_fits_the_limit_and_draws_at_the_shrunk_size():
    image = _grey(2000)
    picture = overview(image, [_figure(1000, 500, 0.7)], max_side=500)
    assert picture.shape == (500, 500, 3)
    style = marker_style(picture.shape)
    assert _ring_pixels(picture, (250, 125), style["radius"], drawing.CLASS_COLOURS["Mitosis"]) > 10
    # a small image is not enlarged
    assert overview(_grey(300), [], max_side=500).shape == (300, 300, 3)


def test_overview_keeps_the_aspect_ratio():
    picture = overview(np.full((1000, 3000, 3), GREY, np.uint8), [], max_side=600)
    assert picture.shape == (200, 600, 3)


def test_gallery_orders_by_score_and_has_one_cell_per_figure():
    image = np.zeros((300, 300, 3), np.uint8)
    shades = {0.2: 60, 0.9: 200, 0.5: 120}
    figures = []
    for i, (score, shade) in enumerate(shades.items()):
        row, col = 50 + 100 * i, 150
        image[row - 10 : row + 10, col - 10 : col + 10] = shade
        figures.append(_figure(row, col, score))
    window, zoom = 32, 2
    picture = gallery(image, figures, window=window, columns=2, zoom=zoom)
    tile = window * zoom
    assert picture.shape[1] == 2 * (tile + 4) + 4  # two columns
    # the centre pixel of each cell, left to right then down: best score first
    label = drawing.gallery_label_height(max(12, tile // 8))
    title = picture.shape[0] - 2 * (tile + label + 4) - 4
    centres = []
    for rank in range(3):
        r, c = divmod(rank, 2)
        y = title + r * (tile + label + 4) + tile // 2
        x = 4 + c * (tile + 4) + tile // 2
        centres.append(int(picture[y, x, 0]))
    assert centres == [200, 120, 60]


def test_gallery_leaves_the_lowest_scores_out_beyond_its_limit():
    figures = [_figure(50, 50, s) for s in (0.1, 0.2, 0.3, 0.4)]
    capped = gallery(_grey(100), figures, window=16, columns=4, max_figures=2)
    full = gallery(_grey(100), figures, window=16, columns=4)
    assert capped.shape[1] < full.shape[1]


def test_an_empty_gallery_is_a_small_image_saying_so():
    picture = gallery(_grey(100), [])
    assert picture.ndim == 3 and picture.shape[0] < 100 and picture.shape[1] < 300
    assert (picture < 100).any()  # the words


def test_evaluation_draws_three_kinds_and_a_legend():
    image = _grey(600)
    picture = draw_evaluation(image, [(300, 100)], [(300, 300)], [(300, 500)])
    radius = marker_style(image.shape)["radius"]
    for (colour, _), centre in zip(drawing.EVALUATION_STYLE.values(), [(300, 100), (300, 300), (300, 500)]):
        r, c = centre
        box = picture[r - radius - 3 : r + radius + 4, c - radius - 3 : c + radius + 4]
        assert _is(box, colour, tol=10).sum() > 20
    assert (picture[:40, :120] == 255).all(axis=-1).sum() > 500  # the legend's white box
    bare = draw_evaluation(image, [], [], [], legend=False)
    assert np.array_equal(bare, image)


@pytest.mark.parametrize(
    "call",
    [
        lambda: draw_figures(np.zeros((10, 10, 5)), []),
        lambda: draw_evaluation(_grey(50), [(1, 2, 3)], [], []),
        lambda: gallery(_grey(50), [], window=0),
        lambda: overview(_grey(50), [], max_side=2.5),
    ],
)
def test_bad_input_is_one_clear_error(call):
    with pytest.raises(ValueError, match="must"):
        call()


def test_float_images_in_0_1_are_scaled():
    picture = draw_figures(np.full((40, 40), 0.5, np.float32), [], count=False)
    assert picture.shape == (40, 40, 3) and picture[0, 0, 0] == 128


def test_a_figure_gives_its_centre_as_xy_and_as_an_array_index():
    figure = _figure(30, 70, 0.5)
    assert figure.xy == (70.5, 30.5) and figure.row_col == (30.0, 70.0)


def test_numbers_follow_the_score_and_ties_read_top_to_bottom_then_left_to_right():
    figures = [_figure(80, 10, 0.5), _figure(20, 90, 0.5), _figure(20, 30, 0.5), _figure(50, 50, 0.9)]
    assert [f.row_col for f in drawing.number_figures(figures)] == [(50, 50), (20, 30), (20, 90), (80, 10)]


def test_overlay_overview_and_gallery_share_numbers_and_say_the_count():
    image = _grey(400)
    figures = [_figure(300, 300, 0.5), _figure(100, 250, 0.5), _figure(200, 80, 0.9)]
    picture, overlay = draw_figures(image, figures, return_labels=True)
    _, small = overview(image, figures, max_side=200, return_labels=True)
    _, crops = gallery(image, figures, return_labels=True)
    expected = {1: (80.5, 200.5), 2: (250.5, 100.5), 3: (300.5, 300.5)}
    assert {label["number"]: (label["x"], label["y"]) for label in overlay} == expected
    assert {label["number"]: (label["x"], label["y"]) for label in crops} == expected
    assert [label["text"] for label in crops][1] == "#2 0.50\nx 250, y 100"
    assert {label["number"]: label["text"] for label in small} == {label["number"]: label["text"] for label in overlay}
    # the count: white letters on a black box in the top-left corner, where no figure lies
    corner = picture[:20, :60]
    assert (corner == 0).all(axis=-1).sum() > 100 and (corner > 200).all(axis=-1).sum() > 10
