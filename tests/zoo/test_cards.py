import os

from mitoseg_tf.zoo import get_card, list_models
from mitoseg_tf.zoo.cards import GENERATED_MARK, main

ZOO = os.path.join(os.path.dirname(__file__), "..", "..", "zoo")


def test_every_registered_model_has_a_card_naming_it_and_its_reference():
    for name in list_models():
        path = os.path.join(ZOO, f"{name}.md")
        assert os.path.exists(path), f"zoo/{name}.md is missing"
        text = open(path).read()
        assert name in text
        reference_start = get_card(name).reference.split(",")[0]
        if text.startswith(GENERATED_MARK):
            assert reference_start in text


def test_generated_cards_are_up_to_date_with_registry_and_parameter_counts():
    # Builds every generated-card model at its paper defaults and re-renders the card.
    assert main(["--check", "--out", ZOO]) == 0
