import pytest

from mitoseg_tf.models import build_unet
from mitoseg_tf.zoo import build, get_card, list_models, register, registry


def test_table1_and_table2_entries_exist():
    names = list_models()
    for name in ("unet", "unet_ca", "unet_sa", "unet_res", "mcsa_unet"):
        assert name in names
    assert list_models("unet*") == sorted(n for n in names if n.startswith("unet"))
    assert "mcsa_unet" not in list_models("unet*")
    assert list_models("zzz*") == []


def test_ablation_switches_are_what_the_names_say():
    expected = {
        "unet": (False, False, False),
        "unet_ca": (True, False, False),
        "unet_sa": (False, True, False),
        "unet_res": (False, False, True),
        "mcsa_unet": (True, True, True),
    }
    for name, (ca, sa, res) in expected.items():
        config = get_card(name).resolved_config()
        assert (config["channel_attention"], config["spatial_attention"], config["residual"]) == (ca, sa, res)
        assert config["name"] == name


def test_paper_results_on_cards():
    assert get_card("mcsa_unet").paper_results == {"mean_dice": 0.82, "paper_mpa": 0.74, "miou": 0.72}
    assert get_card("unet_sa").paper_results["mean_dice"] == 0.66
    assert "table1" in get_card("unet_res").tags


def test_paper_default_widths_and_parameter_counts():
    # Reference Keras U-Net (no BN) at f = 64 has about 31.0 M parameters; CBAM adds about 45 k.
    plain = build("unet", norm=None, input_shape=(64, 64, 3))
    assert abs(plain.count_params() - 31.03e6) / 31.03e6 < 0.01
    mcsa = build("mcsa_unet", norm=None, input_shape=(64, 64, 3))
    assert 40_000 < mcsa.count_params() - plain.count_params() < 50_000


def test_overrides_and_tiny_builds():
    model = build("mcsa_unet", base_filters=8, input_shape=(64, 64, 3))
    assert model.input_shape == (None, 64, 64, 3)
    assert model.get_layer("enc1_conv1").filters == 8
    assert model.get_layer("enc1_csa").residual is True
    assert model.get_layer("bottleneck_conv1").filters == 128


def test_unknown_name_lists_valid_models_and_suggests():
    with pytest.raises(ValueError) as err:
        build("mcsa_unett")
    message = str(err.value)
    assert "mcsa_unet" in message and "Did you mean" in message and "unet_ca" in message


def test_unknown_argument_lists_valid_arguments():
    with pytest.raises(ValueError, match="does not take argument.*filters_base.*Valid arguments: input_shape"):
        build("unet", filters_base=8)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(num_classes=0), "num_classes"),
        (dict(num_classes=1, output_activation="softmax"), "sigmoid"),
        (dict(output_activation="relu"), "output_activation"),
        (dict(base_filters=0), "base_filters"),
        (dict(depth=0), "depth"),
        (dict(dropout=1.5), "dropout"),
        (dict(input_shape=(64, 64, 0)), "channel"),
        (dict(attention_variant="other"), "variant"),
    ],
)
def test_bad_values_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        build("mcsa_unet", **{"input_shape": (32, 32, 3), "base_filters": 4, **bad})


def test_register_decorator(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("my_unet", summary="tiny", reference="none", base_filters=2, depth=2)
    def my_unet(**kwargs):
        return build_unet(**kwargs)

    assert "my_unet" in list_models("my_*")
    model = build("my_unet", input_shape=(16, 16, 3))
    assert model.name == "my_unet" and model.get_layer("enc1_conv1").filters == 2
    with pytest.raises(ValueError, match="already registered"):
        register("my_unet", summary="", reference="")(my_unet)
    with pytest.raises(ValueError, match="lower-case"):
        register("My-Net", summary="", reference="")
    with pytest.raises(ValueError, match="not arguments"):
        register("other_unet", summary="", reference="", widths=3)(build_unet)


def test_builtin_builders_are_imported_when_used_and_take_their_cards_defaults():
    # Registered by import path (listing the zoo imports no Keras), so register() could not check them.
    for name in list_models():
        card = get_card(name)
        assert isinstance(card.builder, registry.LazyBuilder), name
        card.check_defaults()
    assert get_card("unet").builder.function is build_unet
