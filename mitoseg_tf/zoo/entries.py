"""The built-in zoo entries. Importing this module registers them."""

from mitoseg_tf.models.unet import build_unet
from mitoseg_tf.zoo.registry import register

_UNET_REF = "Ronneberger, Fischer & Brox, U-Net, MICCAI 2015 (arXiv:1505.04597)"
_MCSA_REF = (
    "Liu Guohua, Yan Keding et al., A cell nucleus segmentation method based on attention "
    "mechanism and residual structure, Journal of Optoelectronics · Laser 34 (2023)"
)
_MCSA_PAPER = "Liu et al. 2023 (MCSA-Unet)"

# The paper's Table 1 (Dice / MPA / MIoU), keyed by (CA, SA, Res).
_TABLE1 = {
    (False, False, False): {"mean_dice": 0.73, "paper_mpa": 0.63, "miou": 0.51},
    (True, False, False): {"mean_dice": 0.73, "paper_mpa": 0.61, "miou": 0.58},
    (False, True, False): {"mean_dice": 0.66, "paper_mpa": 0.51, "miou": 0.51},
    (False, False, True): {"mean_dice": 0.68, "paper_mpa": 0.51, "miou": 0.58},
    (True, True, True): {"mean_dice": 0.82, "paper_mpa": 0.74, "miou": 0.72},
}


def _variant_name(ca, sa, res):
    if ca and sa and res:
        return "mcsa_unet"
    parts = [tag for tag, on in (("ca", ca), ("sa", sa), ("res", res)) if on]
    return "_".join(["unet", *parts])


def _register_unet_family():
    for ca in (False, True):
        for sa in (False, True):
            for res in (False, True):
                name = _variant_name(ca, sa, res)
                switches = dict(channel_attention=ca, spatial_attention=sa, residual=res)
                on = [label for label, flag in (("CA", ca), ("SA", sa), ("Res", res)) if flag]
                is_baseline = not (ca or sa or res)
                summary = (
                    "U-Net (the MCSA-Unet ablation baseline)"
                    if is_baseline
                    else "MCSA-Unet: U-Net with the CSA block (CBAM + residual) in the encoder"
                    if name == "mcsa_unet"
                    else f"MCSA-Unet ablation: U-Net + {' + '.join(on)}"
                )
                tags = ["unet_family", "table1"] if (ca, sa, res) in _TABLE1 else ["unet_family"]
                if name in ("unet", "mcsa_unet"):
                    tags.append("table2")
                register(
                    name,
                    summary=summary,
                    reference=_UNET_REF if is_baseline else f"{_MCSA_REF}; CBAM: Woo et al., ECCV 2018",
                    paper=_MCSA_PAPER,
                    paper_results=_TABLE1.get((ca, sa, res), {}),
                    tags=tuple(tags),
                    tiny=dict(base_filters=4, input_shape=(32, 32, 3), dropout=0.0),
                    **switches,
                )(build_unet)


_register_unet_family()
