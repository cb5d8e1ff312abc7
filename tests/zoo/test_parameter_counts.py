"""The parameter count stored on each registry card (what ``mitoseg models`` prints) is the built network's."""

import keras
import pytest

from mitoseg_tf.zoo import build, get_card, list_models


@pytest.mark.parametrize("name", list_models())
def test_the_stored_parameter_count_is_the_built_models(name):
    stored = get_card(name).parameters
    assert isinstance(stored, int) and stored > 0, f"{name}: register it with parameters=<count at the defaults>"
    # Deferred variable initialisation: the count needs shapes, not 30-60 M random values.
    with keras.StatelessScope():
        built = build(name).count_params()
    keras.backend.clear_session()
    assert built == stored
