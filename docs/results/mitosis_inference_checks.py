"""Can inference alone close the gap to F1 0.75? Checks on the shipped mitosis U-Net, MITOS-2012 validation fields.

    python docs/results/mitosis_inference_checks.py ../shared/data     # about 6 min on 2 cores

Each row changes one thing about how the 5 fields are predicted (plain maps, no
flip averaging), then chooses the minimum figure size and score threshold on the
same fields, as the recipe does. ``blind`` counts true figures whose highest
probability within 5 um stays under 0.5: no threshold can find those. Results
and what they mean: docs/RESULTS.md, "What inference alone can and cannot do".
"""

import glob
import os
import sys
import warnings

import keras
import numpy as np
from mitosis_figures import calibrated_row, peak_near, validation_fields  # this folder: the script runs as a file
from skimage.color import lab2rgb, rgb2lab
from skimage.transform import resize

from mitoseg_tf.data.formats.mitos12 import MPP
from mitoseg_tf.data.images import read_image
from mitoseg_tf.inference import predict_image
from mitoseg_tf.zoo import build

# Stretched LAB values fall a little outside sRGB; clipping them is the intended result.
warnings.filterwarnings("ignore", message="Conversion from CIE-LAB")
TISSUE_MAX_L = 90.0  # LAB lightness above this is glass, left out of the stain statistics
ADAPT_STEPS, ADAPT_BATCH, ADAPT_TILE = 60, 16, 128


def _tissue_statistics(lab):
    tissue = lab.reshape(-1, 3)
    tissue = tissue[tissue[:, 0] < TISSUE_MAX_L]
    return tissue.mean(0), tissue.std(0)


def lab_statistics(images):
    return _tissue_statistics(np.concatenate([rgb2lab(image).reshape(-1, 3) for image in images]))


def reinhard(image, target):
    """Reinhard et al. 2001: match the tissue's LAB mean and spread to ``target``'s.

    Not the package's ``stain_normalise``: that one maps to a fixed H&E reference, and this
    check asks whether matching the training crops' own colour helps.
    """
    lab = rgb2lab(image)
    mean, std = _tissue_statistics(lab)
    lab = (lab - mean) / std * target[1] + target[0]
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    return (np.clip(lab2rgb(lab), 0.0, 1.0) * 255).round().astype(np.uint8)


def random_tiles(images, rng, count, side):
    tiles = []
    for index in rng.integers(0, len(images), count):
        image = images[index]
        row, col = rng.integers(0, image.shape[0] - side + 1), rng.integers(0, image.shape[1] - side + 1)
        tiles.append(image[row : row + side, col : col + side])
    return np.stack(tiles).astype(np.float32)


def batchnorm_statistics(model, pools, seed=0):
    """Per BatchNorm ``(moving mean, moving variance)`` after running unaugmented tiles of ``pools`` (in turn) in training mode.

    Leaves the model's own statistics as they were. Dropout is off while the
    statistics move, so they describe the network as inference runs it.
    """
    shipped = statistics(model)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    rates = [d.rate for d in dropouts]
    for d in dropouts:
        d.rate = 0.0
    rng = np.random.default_rng(seed)
    for step in range(ADAPT_STEPS):
        model(random_tiles(pools[step % len(pools)], rng, ADAPT_BATCH, ADAPT_TILE), training=True)
    moved = statistics(model)
    set_statistics(model, shipped)
    for d, rate in zip(dropouts, rates):
        d.rate = rate
    return moved


def _norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def statistics(model):
    return [(n.moving_mean.numpy(), n.moving_variance.numpy()) for n in _norms(model)]


def set_statistics(model, values):
    for n, (mean, variance) in zip(_norms(model), values):
        n.moving_mean.assign(mean)
        n.moving_variance.assign(variance)


def blend(base, other, weight):
    return [
        ((1 - weight) * m0 + weight * m1, (1 - weight) * v0 + weight * v1) for (m0, v0), (m1, v1) in zip(base, other)
    ]


def score(model, fields, truth, transform=lambda image: image, scale=1.0):
    maps, peaks = [], []
    for field, centres in zip(fields, truth):
        image = transform(field)
        if scale != 1.0:
            size = (round(image.shape[0] * scale), round(image.shape[1] * scale))
            image = resize(image, size, order=1, preserve_range=True, anti_aliasing=scale < 1).round().astype(np.uint8)
        probability = predict_image(model, image)
        if scale != 1.0:
            probability = resize(probability, field.shape[:2], order=1)
        peaks += peak_near(probability, centres, 5.0 / MPP["A"])
        maps.append(probability)
    return f"{calibrated_row(maps, truth)}  {sum(p < 0.5 for p in peaks):>5}"


def main(data_root):
    fields, truth = validation_fields(data_root)
    amibr = [
        read_image(f)[..., :3] for f in sorted(glob.glob(os.path.join(data_root, "amibr", "patches", "*", "*.png")))
    ]
    monuseg = [
        read_image(f)[..., :3]
        for f in sorted(glob.glob(os.path.join(data_root, "monuseg", "train", "images", "*.tif")))
    ]
    model = build("unet", weights="mitosis", input_shape=(None, None, 3))
    amibr_stain = lab_statistics(amibr[::10])

    print(f"{'maps (plain, no flip averaging)':<58} {'TP':>3} {'FP':>3} {'FN':>3}  F1     min  thresh  blind")
    print(f"{'shipped, as predicted by default minus TTA':<58} {score(model, fields, truth)}")
    print(
        f"{'stain normalised to AMi-Br (Reinhard LAB)':<58} {score(model, fields, truth, lambda i: reinhard(i, amibr_stain))}"
    )
    for scale in (0.8, 1.25):
        print(f"{f'fields rescaled x{scale} (figure size)':<58} {score(model, fields, truth, scale=scale)}")
    shipped = statistics(model)
    # training ran its statistics under colour jitter: re-estimated on unaugmented training tissue,
    # and from the validation fields themselves (unlabelled test-time adaptation, AdaBN)
    clean = batchnorm_statistics(model, [amibr, monuseg])
    from_fields = batchnorm_statistics(model, [fields])
    rows = [("BatchNorm statistics from unaugmented training tissue", clean)]
    rows += [
        (f"BatchNorm statistics {w:.0%} from the validation fields", blend(shipped, from_fields, w)) for w in (0.2, 1.0)
    ]
    for label, values in rows:
        set_statistics(model, values)
        print(f"{label:<58} {score(model, fields, truth)}")
    set_statistics(model, shipped)


if __name__ == "__main__":
    main(*sys.argv[1:])
