"""The parameter count stored on each registry card (what ``mitoseg models`` prints) is the built network's,
and its "detector" tag says whether the network trains on its own losses."""

import keras
import pytest

from mitoseg_tf.zoo import build, get_card, list_models


@pytest.mark.parametrize("name", list_models())
def test_the_stored_parameter_count_is_the_built_models(name):
    stored = get_card(name).parameters
    assert isinstance(stored, int) and stored > 0, f"{name}: register it with parameters=<count at the defaults>"
    # Deferred variable initialisation: the count needs shapes, not 30-60 M random values.
    with keras.StatelessScope():
        model = build(name)
        built = model.count_params()
    keras.backend.clear_session()
    assert built == stored
    # A comparison recipe's loss reaches every network but the ones tagged "detector", which train on their
    # own losses (compare.recipe): the tag must say what the built model does.
    assert ("detector" in get_card(name).tags) == bool(getattr(model, "computes_own_loss", False))
