"""``build_ms_rcnn``: Mask Scoring R-CNN (Huang et al., CVPR 2019) as a functional Keras 3 model.

The functional graph is the inference network: image -> backbone -> FPN ->
RPN -> proposals -> box head -> detections -> mask head -> MaskIoU head ->
instances plus the semantic ``mask`` (instances pasted and OR-ed) that every
zoo helper scores. Training goes through the same model object: called with
``training=True`` the model runs the shared backbone/FPN/RPN layers up to the
proposals only, and its ``compute_loss`` (Keras 3's backend-agnostic hook)
derives the instances from the binary mask, samples anchors and RoIs, runs
the three RoI heads on them and returns the sum of the six losses. The model
says so with ``computes_own_loss = True``, which ``compile_model`` reads.
"""

import keras
from keras import ops

from mitoseg_tf.layers.checks import InputSizeCheck
from mitoseg_tf.models.ms_rcnn import backbone as backbone_lib
from mitoseg_tf.models.ms_rcnn import losses as losses_lib
from mitoseg_tf.models.ms_rcnn import targets as targets_lib
from mitoseg_tf.models.ms_rcnn.anchors import encode
from mitoseg_tf.models.ms_rcnn.heads import BoxHead, MaskHead, MaskIoUHead
from mitoseg_tf.models.ms_rcnn.inference import (
    BOX_HEAD_WEIGHTS,
    Detections,
    MaskScores,
    PasteMasks,
    Proposals,
    SelectClass,
    select_class,
)
from mitoseg_tf.models.ms_rcnn.instances import instance_targets
from mitoseg_tf.models.ms_rcnn.roi_align import RoIAlign

STRIDE = 32
MASK_SIZE = 28
BACKBONES = ("resnet50", "small")
# Detection outputs besides the semantic ``mask``, in output order.
LOSS_TERMS = ("rpn_objectness", "rpn_box", "box_classification", "box_regression", "mask", "mask_iou")
DETECTION_OUTPUTS = ("det_boxes", "det_classes", "det_scores", "det_maskiou", "det_mask_scores", "det_masks")


def _check(config):
    name = config["name"]
    shape = config["input_shape"]
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"{name}: input_shape must be (height, width, 3) or (None, None, 3); got {shape!r}.")
    if shape[2] != 3:
        raise ValueError(f"{name}: the detector takes RGB images (3 channels); got input_shape {shape!r}.")
    for side in shape[:2]:
        if side is not None and (not isinstance(side, int) or side < STRIDE or side % STRIDE):
            raise ValueError(
                f"{name} needs an input height and width that are positive multiples of {STRIDE} "
                f"(or None); got input_shape {tuple(shape)!r}."
            )
    if config["backbone"] not in BACKBONES:
        raise ValueError(f"{name}: backbone must be one of {BACKBONES}; got {config['backbone']!r}.")
    if config["backbone_weights"] is not None and config["backbone"] != "resnet50":
        raise ValueError(f"{name}: backbone_weights only applies to backbone='resnet50'.")
    if not isinstance(config["num_classes"], int) or config["num_classes"] < 2:
        raise ValueError(
            f"{name}: num_classes counts the background too and must be >= 2; got {config['num_classes']!r}."
        )
    if len(config["anchor_sizes"]) != 5:
        raise ValueError(f"{name}: anchor_sizes needs one size per level P2..P6 (5); got {config['anchor_sizes']!r}.")
    for key in ("rpn_pre_nms_topk", "rpn_post_nms_topk"):
        if len(config[key]) != 2 or min(config[key]) < 1:
            raise ValueError(f"{name}: {key} is (training, inference), two positive integers; got {config[key]!r}.")
    for key in ("score_threshold", "mask_score_threshold", "roi_positive_fraction"):
        if not 0.0 <= config[key] <= 1.0:
            raise ValueError(f"{name}: {key} must be in [0, 1]; got {config[key]!r}.")
    for key in ("max_instances", "max_detections", "rois_per_image", "rpn_batch_size"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{name}: {key} must be a positive integer; got {config[key]!r}.")


def _make_layers(config):
    """Every layer of the network, keyed by its (deterministic) name."""
    c = config
    k = c["num_classes"]
    anchors_per_cell = len(c["anchor_ratios"])
    layers = {"input_size_check": InputSizeCheck(STRIDE, model_name=c["name"], name="input_size_check")}
    if c["backbone"] == "resnet50":
        layers["preprocess"] = backbone_lib.CaffePreprocess(name="preprocess")
        layers["backbone"] = backbone_lib.resnet50_backbone(c["input_shape"], c["backbone_weights"], c["frozen_bn"])
    else:
        layers["preprocess"] = keras.layers.Rescaling(1.0 / 255.0, name="preprocess")
        layers["backbone"] = backbone_lib.small_backbone(c["input_shape"], c["backbone_width"])
    layers.update(backbone_lib.fpn_layers(c["fpn_channels"]))
    small = keras.initializers.RandomNormal(stddev=0.01)
    layers["rpn_conv"] = keras.layers.Conv2D(
        c["fpn_channels"], 3, padding="same", activation="relu", kernel_initializer=small, name="rpn_conv"
    )
    layers["rpn_objectness"] = keras.layers.Conv2D(anchors_per_cell, 1, kernel_initializer=small, name="rpn_objectness")
    layers["rpn_deltas"] = keras.layers.Conv2D(4 * anchors_per_cell, 1, kernel_initializer=small, name="rpn_deltas")
    layers["proposals"] = Proposals(
        c["anchor_sizes"],
        c["anchor_ratios"],
        pre_nms_topk=c["rpn_pre_nms_topk"],
        post_nms_topk=c["rpn_post_nms_topk"],
        nms_threshold=c["rpn_nms_threshold"],
        name="proposals",
    )
    layers["roi_align_box"] = RoIAlign(7, c["sampling_ratio"], name="roi_align_box")
    layers["box_head"] = BoxHead(k, c["box_fc_dim"], name="box_head")
    layers["detections"] = Detections(
        c["score_threshold"], c["detection_nms_threshold"], c["max_detections"], name="detections"
    )
    layers["roi_align_mask"] = RoIAlign(MASK_SIZE // 2, c["sampling_ratio"], name="roi_align_mask")
    layers["mask_head"] = MaskHead(k, c["mask_conv_dim"], c["mask_num_convs"], name="mask_head")
    layers["select_mask"] = SelectClass("sigmoid", name="select_mask")
    layers["maskiou_head"] = MaskIoUHead(k, c["maskiou_conv_dim"], c["maskiou_fc_dim"], name="maskiou_head")
    layers["select_maskiou"] = SelectClass(name="select_maskiou")
    layers["mask_scores"] = MaskScores(name="mask_scores")
    layers["paste_masks"] = PasteMasks(c["mask_score_threshold"], name="paste_masks")
    return layers


def _pyramid_and_rpn(image, layers):
    """image -> (P2..P6, RPN objectness per level, RPN deltas per level); shared by both graphs."""
    x = layers["preprocess"](layers["input_size_check"](image))
    features = backbone_lib.fpn(layers["backbone"](x), layers)
    objectness, deltas = [], []
    for feature in features:
        hidden = layers["rpn_conv"](feature)
        objectness.append(layers["rpn_objectness"](hidden))
        deltas.append(layers["rpn_deltas"](hidden))
    return features, objectness, deltas


@keras.saving.register_keras_serializable(package="mitoseg")
class MaskScoringRCNN(keras.Model):
    """The functional inference graph plus the training forward and the six losses (see the module doc).

    Serialised by its builder arguments: ``from_config`` rebuilds the network
    (deterministic layer names) and the weights are loaded into it.
    """

    computes_own_loss = True

    def __init__(self, inputs, outputs, build_config, name=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.build_config = dict(build_config)
        self.sampling_seed = keras.random.SeedGenerator(self.build_config["seed"], name="sampling_seed")
        # Shown next to the total loss in fit's logs.
        self.loss_trackers = [keras.metrics.Mean(name=f"{term}_loss") for term in LOSS_TERMS]
        self.mask_metrics = []

    def set_mask_metrics(self, metrics):
        """Metrics of the semantic ``mask`` output, updated when the model is evaluated (not while training:
        the training forward stops at the proposals)."""
        self.mask_metrics = list(metrics or [])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        scored = isinstance(y_pred, dict) and "mask" in y_pred
        if scored:
            truth = y["mask"] if isinstance(y, dict) else y
            for metric in self.mask_metrics:
                metric.update_state(truth, y_pred["mask"])
        # Training steps log the losses only: the mask metrics have seen nothing there.
        skip = () if scored else tuple(id(m) for m in self.mask_metrics)
        results = {}
        for metric in self.metrics:
            if id(metric) in skip:
                continue
            value = metric.result()
            results.update(value if isinstance(value, dict) else {metric.name: value})
        return results

    def _layer(self, name):
        return self.get_layer(name)

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not training:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        layers = {layer.name: layer for layer in self.layers}
        features, objectness, deltas = _pyramid_and_rpn(inputs, layers)
        proposals, valid = layers["proposals"]([inputs, *objectness, *deltas], training=True)
        return {
            "features": features[:4],
            "rpn_objectness": objectness,
            "rpn_deltas": deltas,
            "proposals": proposals,
            "proposal_valid": valid,
        }

    def loss_terms(self, y, y_pred):
        """The six losses (float32 scalars) for targets ``y`` (binary mask) and a training forward's ``y_pred``."""
        config = {**self.build_config, "mask_size": MASK_SIZE}
        mask = y["mask"] if isinstance(y, dict) else y
        instances = instance_targets(mask, config["max_instances"], config["min_instance_area"])
        objectness, deltas = y_pred["rpn_objectness"], y_pred["rpn_deltas"]
        shapes = [(ops.shape(o)[1], ops.shape(o)[2]) for o in objectness]
        anchors = self._layer("proposals").anchors(shapes)
        cells = [ops.shape(o)[1] * ops.shape(o)[2] * o.shape[3] for o in objectness]
        flat_objectness = ops.concatenate([ops.reshape(o, (-1, n)) for o, n in zip(objectness, cells)], axis=1)
        flat_deltas = ops.concatenate([ops.reshape(d, (-1, n, 4)) for d, n in zip(deltas, cells)], axis=1)
        rpn = targets_lib.rpn_targets(anchors, instances, config, self.sampling_seed)
        rpn_objectness, rpn_box = losses_lib.rpn_losses(flat_objectness, flat_deltas, rpn)

        rois = targets_lib.sample_rois(
            y_pred["proposals"], y_pred["proposal_valid"] > 0.5, instances, config, self.sampling_seed
        )
        features = y_pred["features"]
        class_logits, box_deltas = self._layer("box_head")(self._layer("roi_align_box")([*features, rois["boxes"]]))
        box_targets = encode(rois["gt_boxes"], rois["boxes"], BOX_HEAD_WEIGHTS)
        box_classification, box_regression = losses_lib.box_head_losses(class_logits, box_deltas, rois, box_targets)

        k = rois["num_positive_slots"]
        mask_features = self._layer("roi_align_mask")([*features, rois["boxes"][:, :k]])
        classes = rois["classes"][:, :k]
        mask_logits = select_class(self._layer("mask_head")(mask_features), classes)
        mask_target, in_box, area = targets_lib.roi_mask_targets(instances, rois, config)
        mask_prob = ops.sigmoid(mask_logits)
        maskiou = select_class(self._layer("maskiou_head")([mask_features, mask_prob]), classes)
        maskiou_target = targets_lib.maskiou_targets(mask_prob, mask_target, in_box, area)
        mask, mask_iou = losses_lib.mask_losses(
            mask_logits, mask_target, maskiou, maskiou_target, rois["positive"][:, :k]
        )
        return {
            "rpn_objectness": rpn_objectness,
            "rpn_box": rpn_box,
            "box_classification": box_classification,
            "box_regression": box_regression,
            "mask": mask,
            "mask_iou": mask_iou,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Sum of the six R-CNN losses (plus any layer regularisation losses), float32."""
        if sample_weight is not None:
            raise ValueError(
                f"{self.name} does not take sample weights; its losses weight anchors and RoIs themselves."
            )
        if y is None:
            raise ValueError(f"{self.name} trains on (image, mask) batches; the mask is missing.")
        if not isinstance(y_pred, dict) or "proposals" not in y_pred:
            y_pred = self(x, training=True)
        terms = self.loss_terms(y, y_pred)
        for tracker, term in zip(self.loss_trackers, LOSS_TERMS):
            tracker.update_state(terms[term])
        total = sum(terms.values())
        for extra in self.losses:
            total = total + ops.cast(extra, "float32")
        return total

    def get_config(self):
        return {**self.build_config, "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return build_ms_rcnn(**config)


def build_ms_rcnn(
    input_shape=(None, None, 3),
    num_classes=2,
    backbone="resnet50",
    backbone_weights=None,
    backbone_width=16,
    frozen_bn=True,
    fpn_channels=256,
    anchor_sizes=(8, 16, 32, 64, 128),
    anchor_ratios=(0.5, 1.0, 2.0),
    rpn_pre_nms_topk=(2000, 1000),
    rpn_post_nms_topk=(1000, 1000),
    rpn_nms_threshold=0.7,
    rpn_batch_size=256,
    rpn_positive_iou=0.7,
    rpn_negative_iou=0.3,
    rois_per_image=512,
    roi_positive_fraction=0.25,
    roi_positive_iou=0.5,
    box_fc_dim=1024,
    mask_conv_dim=256,
    mask_num_convs=4,
    maskiou_conv_dim=256,
    maskiou_fc_dim=1024,
    sampling_ratio=2,
    score_threshold=0.05,
    detection_nms_threshold=0.5,
    max_detections=100,
    mask_score_threshold=0.3,
    max_instances=32,
    min_instance_area=4,
    seed=0,
    name="ms_rcnn",
):
    """Mask Scoring R-CNN for mitotic figures.

    Args:
        input_shape: ``(H, W, 3)`` with H, W multiples of 32, or ``(None, None, 3)``. RGB 0-255.
        num_classes: classes including background (2: background / mitosis).
        backbone: ``"resnet50"`` (``keras.applications``; ``backbone_weights`` is
            None or the path of the ImageNet ``*_notop.h5`` file; ``frozen_bn``)
            or ``"small"`` (a ResNet-style stack of width ``backbone_width``).
        anchor_sizes: one anchor side per level P2..P6 (mitotic figures are
            15-40 px); ``anchor_ratios``: h / w.
        rpn_pre_nms_topk / rpn_post_nms_topk: per level / per image, ``(training, inference)``.
        rois_per_image, roi_positive_fraction, roi_positive_iou: RoI sampling for the heads.
        score_threshold, detection_nms_threshold, max_detections: inference.
        mask_score_threshold: instances with ``mask_score`` at or above it are
            pasted into the semantic ``mask`` (tune on validation data).
        max_instances, min_instance_area: instance targets from the binary mask.

    Returns a ``MaskScoringRCNN`` whose outputs are ``mask (B, H, W, 1)``
    (probability), ``det_boxes (B, D, 4)`` (x1, y1, x2, y2 pixels),
    ``det_classes``, ``det_scores``, ``det_maskiou``, ``det_mask_scores`` ``(B, D)``
    and ``det_masks (B, D, 28, 28)``; padding detections have score 0.

    Example:
        >>> model = build_ms_rcnn(backbone="small", fpn_channels=32, input_shape=(128, 128, 3))
    """
    config = {k: v for k, v in locals().items()}
    for key in ("input_shape", "anchor_sizes", "anchor_ratios", "rpn_pre_nms_topk", "rpn_post_nms_topk"):
        if isinstance(config[key], list):
            config[key] = tuple(config[key])
    _check(config)
    layers = _make_layers(config)
    image = keras.Input(shape=tuple(input_shape), name="image")
    features, objectness, deltas = _pyramid_and_rpn(image, layers)
    proposals, proposal_valid = layers["proposals"]([image, *objectness, *deltas])
    class_logits, box_deltas = layers["box_head"](layers["roi_align_box"]([*features[:4], proposals]))
    boxes, scores, classes, valid = layers["detections"]([image, proposals, proposal_valid, class_logits, box_deltas])
    mask_features = layers["roi_align_mask"]([*features[:4], boxes])
    masks = layers["select_mask"]([layers["mask_head"](mask_features), classes])
    maskiou = layers["select_maskiou"]([layers["maskiou_head"]([mask_features, masks]), classes])
    mask_scores = layers["mask_scores"]([maskiou, scores, valid])
    semantic = layers["paste_masks"]([image, boxes, masks, mask_scores])
    outputs = {"mask": keras.layers.Activation("sigmoid", dtype="float32", name="mask")(semantic)}
    for key, tensor in zip(DETECTION_OUTPUTS, (boxes, classes, scores, maskiou, mask_scores, masks)):
        outputs[key] = keras.layers.Identity(dtype="float32", name=key)(tensor)
    return MaskScoringRCNN(image, outputs, build_config=config, name=name)
