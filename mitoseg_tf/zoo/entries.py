"""The built-in zoo entries. Importing this module registers them (and imports no Keras).

Each builder is named by its import path and imported when first built, so
``mitoseg models`` lists names, summaries and parameter counts in a fraction
of a second.
"""

from mitoseg_tf.zoo.registry import register

# The modules holding the builders; importing them registers their layers with Keras (zoo/__init__.py).
BUILDERS = {
    "unet": "mitoseg_tf.models.unet:build_unet",
    "res_unet": "mitoseg_tf.models.res_unet:build_res_unet",
    "unet_plus_plus": "mitoseg_tf.models.unet_plus_plus:build_unet_plus_plus",
    "unet_3plus": "mitoseg_tf.models.unet_3plus:build_unet_3plus",
    "ms_rcnn": "mitoseg_tf.models.ms_rcnn:build_ms_rcnn",
}

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


_NOTES = (
    "One builder (`mitoseg_tf.models.unet.build_unet`) makes U-Net, MCSA-Unet and every ablation "
    "variant, so the networks of Table 1 differ only in the switched parts. CSA = `F1 + CBAM(F1)` "
    "after each encoder level's double conv (not in the bottleneck unless `attention_in_bottleneck`). "
    "`attention_variant='paper'` multiplies the spatial map into `F1` as the paper's eq. 2 is printed; "
    "the default follows CBAM. With attention off, the `residual` switch adds a 1x1-projected "
    "shortcut of the level input (a residual unit): `F1 + F1` would only rescale the features. "
    "Not stated in the paper, chosen here: BatchNorm after every conv (on by default; "
    "`norm=None` gives the reference 31.0 M-parameter Keras U-Net), dropout 0.5 after the "
    "deepest encoder level and the bottleneck, Adam with weight EMA (decay 0.99) for training. "
    "Model input is RGB in [0, 255]; the model rescales it itself."
)


def _variant_name(ca, sa, res):
    if ca and sa and res:
        return "mcsa_unet"
    parts = [tag for tag, on in (("ca", ca), ("sa", sa), ("res", res)) if on]
    return "_".join(["unet", *parts])


# Parameters at the defaults (f = 64, BatchNorm), checked by tests/zoo/test_parameter_counts.py.
_UNET_FAMILY_PARAMETERS = {
    "unet": 31_052_354,
    "unet_ca": 31_096_894,
    "unet_sa": 31_052_762,
    "unet_res": 31_228_418,
    "unet_ca_sa": 31_097_302,
    "unet_ca_res": 31_096_894,
    "unet_sa_res": 31_052_762,
    "mcsa_unet": 31_097_302,
}


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
                    notes=_NOTES,
                    summary=summary,
                    reference=_UNET_REF if is_baseline else f"{_MCSA_REF}; CBAM: Woo et al., ECCV 2018",
                    paper=_MCSA_PAPER,
                    paper_results=_TABLE1.get((ca, sa, res), {}),
                    tags=tuple(tags),
                    tiny=dict(base_filters=4, input_shape=(32, 32, 3), dropout=0.0),
                    parameters=_UNET_FAMILY_PARAMETERS[name],
                    **switches,
                )(BUILDERS["unet"])


_register_unet_family()


# The paper's Table 2 (Dice / MPA / MIoU) for the networks MCSA-Unet is compared with.
_TABLE2 = {
    "res_unet": {"mean_dice": 0.68, "paper_mpa": 0.51, "miou": 0.58},
    "unet_plus_plus": {"mean_dice": 0.80, "paper_mpa": 0.63, "miou": 0.62},
    "unet_3plus": {"mean_dice": 0.77, "paper_mpa": 0.67, "miou": 0.64},
}


def _register_comparison_networks():
    register(
        "res_unet",
        summary="Res-UNet: deep residual U-Net (pre-activation residual units, three downsamplings)",
        reference=(
            "Zhang, Liu & Wang, Road extraction by deep residual U-Net, IEEE GRSL 2018 (arXiv:1711.10684); "
            "variant='residual_5level': residual-block U-Net in the style of Xiao et al. 2018"
        ),
        paper=_MCSA_PAPER,
        paper_results=_TABLE2["res_unet"],
        notes="The paper's ref. [13] is not identifiable; Zhang et al. 2018 is the default. 8.23 M parameters at f=64.",
        tags=("comparison", "table2", "residual"),
        parameters=8_228_866,
        tiny=dict(base_filters=4, input_shape=(32, 32, 3), dropout=0.0),
    )(BUILDERS["res_unet"])
    register(
        "unet_plus_plus",
        summary="UNet++: nested dense skip pathways, deep supervision, accurate / fast (pruned) inference",
        reference=(
            "Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, "
            "DLMIA 2018 (arXiv:1807.10165); IEEE TMI 2019 (arXiv:1912.05074)"
        ),
        paper=_MCSA_PAPER,
        paper_results=_TABLE2["unet_plus_plus"],
        notes="Official Keras defaults (f=32, no BN, dropout 0.5, L2 1e-4): 9.04 M parameters. Paper loss: 'bce_dice'.",
        tags=("comparison", "table2", "deep_supervision"),
        parameters=9_042_408,
        tiny=dict(base_filters=4, input_shape=(32, 32, 3), dropout=0.0),
    )(BUILDERS["unet_plus_plus"])
    register(
        "unet_3plus",
        summary="UNet 3+: full-scale skips, full-scale deep supervision and a classification-guided module",
        reference=(
            "Huang et al., UNet 3+: A Full-Scale Connected UNet for Medical Image Segmentation, "
            "ICASSP 2020 (arXiv:2004.08790)"
        ),
        paper=_MCSA_PAPER,
        paper_results=_TABLE2["unet_3plus"],
        notes="26.97 M parameters at f=64 (27.0 M with deep supervision). Paper loss: 'hybrid'.",
        tags=("comparison", "table2", "deep_supervision", "cgm"),
        parameters=27_017_931,
        tiny=dict(base_filters=4, skip_filters=4, input_shape=(32, 32, 3), cgm_dropout=0.0),
    )(BUILDERS["unet_3plus"])


_register_comparison_networks()


# The paper's Table 2 row for Mask Scoring R-CNN (Dice / MPA / MIoU).
_MS_RCNN_TABLE2 = {"mean_dice": 0.79, "paper_mpa": 0.75, "miou": 0.69}


def _register_detectors():
    register(
        "ms_rcnn",
        summary="Mask Scoring R-CNN: ResNet-50-FPN Mask R-CNN with a MaskIoU head; instances plus the semantic mask",
        reference=(
            "Huang et al., Mask Scoring R-CNN, CVPR 2019 (arXiv:1903.00241); "
            "He et al., Mask R-CNN, ICCV 2017 (arXiv:1703.06870)"
        ),
        paper=_MCSA_PAPER,
        paper_results=_MS_RCNN_TABLE2,
        notes=(
            "Trains on the same (image, mask) batches as the U-Nets: instances are the 8-connected components "
            "of the augmented mask, found inside the training graph; mitosis-free tiles train as all-negative. "
            "The `mask` output pastes the instances whose mask score (class score x MaskIoU) reaches "
            "`mask_score_threshold` (tune it on validation data). Anchors 8..128 px on P2..P6 for 15-40 px "
            "figures. ResNet-50 from keras.applications, random init unless `backbone_weights` names the "
            "ImageNet `*_notop.h5` file; `frozen_bn` follows the official recipe (meant for pretrained weights). "
            "`mitoseg export` serves the instances as well as the mask (`det_boxes` in input-image pixels, "
            "`det_scores`, `det_mask_scores`, `det_masks`)."
        ),
        tags=("comparison", "table2", "detector", "instances"),
        parameters=60_315_549,
        tiny=dict(
            input_shape=(64, 64, 3),
            backbone="small",
            backbone_width=8,
            fpn_channels=16,
            rpn_pre_nms_topk=(100, 50),
            rpn_post_nms_topk=(50, 30),
            rpn_batch_size=64,
            rois_per_image=32,
            box_fc_dim=32,
            mask_conv_dim=16,
            mask_num_convs=2,
            maskiou_conv_dim=16,
            maskiou_fc_dim=32,
            max_detections=10,
            max_instances=8,
        ),
    )(BUILDERS["ms_rcnn"])


_register_detectors()
