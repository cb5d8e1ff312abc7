"""Which zoo models make up the paper's tables: read from the registry's card tags, never listed in code.

A model registered later with tag ``table1`` or ``table2`` (e.g. MS R-CNN)
joins the comparison with no change here; ``PAPER_ORDER`` only sorts rows
the way the paper prints them (unknown names go before MCSA-Unet, which the
paper puts last).
"""

from mitoseg_tf.config import TABLES
from mitoseg_tf.zoo import get_card, list_models

PAPER_ORDER = ("unet", "unet_ca", "unet_sa", "unet_res", "res_unet", "unet_plus_plus", "unet_3plus", "ms_rcnn")
PROPOSED = "mcsa_unet"
DISPLAY_NAMES = {
    "unet": "U-Net",
    "res_unet": "Res-Unet",
    "unet_plus_plus": "Unet++",
    "unet_3plus": "Unet3+",
    "ms_rcnn": "MS-RCNN",
    "mcsa_unet": "MCSA-Unet",
}
# The ablation switches Table 1 shows as columns, read from each model's resolved config.
ABLATION_SWITCHES = (("CA", "channel_attention"), ("SA", "spatial_attention"), ("Res", "residual"))


def paper_sort_key(name):
    """Rows in the paper's order; other models alphabetically after the known ones, MCSA-Unet last."""
    known = PAPER_ORDER.index(name) if name in PAPER_ORDER else len(PAPER_ORDER)
    return (name == PROPOSED, known, name)


def table_models(table):
    """Registered models tagged ``table`` ("table1" or "table2"), in the paper's row order."""
    if table not in TABLES:
        raise ValueError(f"Unknown table {table!r}; choose from {', '.join(TABLES)}.")
    return sorted((n for n in list_models() if table in get_card(n).tags), key=paper_sort_key)


def resolve_models(models=None, tables=TABLES):
    """The models to train: ``models`` (names, each checked) or the union of the tables' models."""
    for table in tables:
        if table not in TABLES:
            raise ValueError(f"Unknown table {table!r}; choose from {', '.join(TABLES)}.")
    if models:
        for name in models:
            get_card(name)  # unknown names fail here with the registry's message
        return sorted(dict.fromkeys(models), key=paper_sort_key)
    names = {n for table in tables for n in table_models(table)}
    if not names:
        raise ValueError(f"No registered model is tagged {', '.join(tables)}.")
    return sorted(names, key=paper_sort_key)


def display_name(name):
    """The paper's name for a network, else the registry name."""
    return DISPLAY_NAMES.get(name, name)


def ablation_flags(name):
    """``{"CA": bool, "SA": bool, "Res": bool}`` for a U-Net-family model, None for other networks."""
    config = get_card(name).resolved_config()
    if not all(key in config for _, key in ABLATION_SWITCHES):
        return None
    return {label: bool(config[key]) for label, key in ABLATION_SWITCHES}
