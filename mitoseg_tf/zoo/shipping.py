"""Putting trained weights into the package: float16 files and their entries in ``manifest.json``.

The authors' side of ``zoo.pretrained``: ``ship_run`` copies a training run's
best checkpoint (its ``config.json``, ``metrics.json`` and, for detection
weights, ``detection.json`` give the card), ``ship_rescorer`` stores the
second-stage figure classifier beside the weights whose candidates it
rescores. ``manifest.json`` is read through ``weights_card.read_manifest``.
"""

import json
import os
import tempfile

import h5py
import numpy as np

from mitoseg_tf.detection.evaluation import load_detection_settings
from mitoseg_tf.models.figure_classifier import figure_classifier_arguments
from mitoseg_tf.zoo import weights_card
from mitoseg_tf.zoo.checkpoint import load_checkpoint
from mitoseg_tf.zoo.pretrained import file_sha256, weights_entry
from mitoseg_tf.zoo.registry import get_card
from mitoseg_tf.zoo.weights_card import MANIFEST, read_manifest, weights_folder


class WeightsTooLarge(ValueError):
    """A weights file over the size the package ships (``ship_run(max_bytes=...)``)."""


def save_float16_weights(model, path):
    """``model.save_weights(path)`` with every float array stored as float16 (shipping size).

    HDF5 does not reclaim deleted space, so the file is rewritten, not edited.
    """

    def copy(src, dst):
        dst.attrs.update(src.attrs)
        for key, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(key))
            else:
                data = np.asarray(item)
                dst.create_dataset(key, data=data.astype(np.float16) if data.dtype.kind == "f" else data)
                dst[key].attrs.update(item.attrs)

    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, "full.weights.h5")
        model.save_weights(full)
        with h5py.File(full, "r") as src, h5py.File(path, "w") as dst:
            copy(src, dst)
    return path


def _write_manifest(manifest, weights_dir):
    with open(os.path.join(weights_dir, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)


def _test_by_distance(settings):
    """The test split's detection scores keyed by match distance, as the card keys the validation ones."""
    return settings.get("test_by_distance") or {f"{settings['match_distance_um']:g}um": settings["test"]}


def ship_run(
    run_dir, tag, *, data, licence, data_licences, weights_dir=None, extra=None, detection=False, max_bytes=None
):
    """Copy a run's best checkpoint into the package as float16 weights and list it in the manifest.

    ``data`` and ``licence`` describe the training data (weights inherit its
    licence conditions); ``data_licences`` names every dataset trained on, keys of
    ``weights_card.DATA_LICENCES`` (e.g. ``["mitos_atypia14", "amibr", "monuseg"]``),
    so the card lists each one's terms; the run's config.json gives the model and builder
    arguments, metrics.json the validation metrics and, for detection weights
    (``detection=True``), detection.json the figure settings chosen on validation,
    which ``mitoseg predict`` then applies, and the test split's scores at them when the run had one.
    ``max_bytes``: a float16 file larger than this is refused (``WeightsTooLarge``)
    and nothing is written, so a weights file already shipped under the same name stays.
    """
    weights_dir = weights_folder(weights_dir)
    weights_card.data_licences(data_licences)  # an unknown dataset fails before anything is written
    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    name = config["model"]
    # A network without a base width (MS R-CNN: its backbone's) does not take base_filters, so build() would refuse it.
    arguments = {**get_card(name).width_arguments(config["base_filters"]), **config.get("model_args", {})}
    model = load_checkpoint(os.path.join(run_dir, "best.keras"))
    os.makedirs(weights_dir, exist_ok=True)
    file = f"{name}_{tag}.weights.h5"
    part = os.path.join(weights_dir, file + ".part")
    save_float16_weights(model, part)
    size = os.path.getsize(part)
    if max_bytes is not None and size > max_bytes:
        os.remove(part)
        raise WeightsTooLarge(
            f"{name}/{tag}: the float16 weights of {run_dir} are {size / 1e6:.1f} MB ({model.count_params():,} "
            f"parameters), over the {max_bytes / 1e6:g} MB a shipped file may take; nothing was written. "
            "Train a narrower network (base_filters, or the model's own widths in model_args)."
        )
    os.replace(part, os.path.join(weights_dir, file))
    manifest = read_manifest(weights_dir)
    manifest[f"{name}/{tag}"] = {
        "file": file,
        "sha256": file_sha256(os.path.join(weights_dir, file)),
        "arguments": arguments,
        "threshold": 0.5,
        "data": data,
        "licence": licence,
        "data_licences": list(data_licences),
        "recipe": config.get("recipe"),
        "precision": config.get("resolved_precision"),
        "train_seconds": metrics.get("train_seconds"),
        "validation": metrics["validation"]["model"],
        **(extra or {}),
    }
    if detection:
        settings = load_detection_settings(run_dir)
        if settings is None:
            raise FileNotFoundError(f"{run_dir} has no detection.json to ship with detection weights.")
        keep = ("score_threshold", "min_area_um2", "pixel_threshold", "match_distance_um", "figure_score", "mpp", "tta")
        manifest[f"{name}/{tag}"]["detection"] = {
            **{k: settings[k] for k in keep if k in settings},
            "validation": settings.get("validation_by_distance") or settings.get("validation"),
            # the in-sample score above flatters; the card carries the leave-one-image-out one beside it
            "validation_held_out": settings.get("validation_held_out"),
            # scored at the settings above, which the test split did not choose
            **({"test": _test_by_distance(settings)} if settings.get("test") else {}),
        }
    _write_manifest(manifest, weights_dir)
    return os.path.join(weights_dir, file)


def ship_rescorer(classifier, name, tag, *, detection, training, weights_dir=None):
    """Store ``classifier`` (float16) beside the shipped ``name``/``tag`` weights, whose candidates it rescores.

    ``detection``: the settings chosen on the rescored candidates (pixel
    threshold of the candidates, size floor, classifier-score threshold and
    their validation scores); ``training``: what it was trained on and how.
    """
    weights_dir = weights_folder(weights_dir)
    weights_entry(name, tag, weights_dir)  # the weights it rescores must ship already
    file = f"{name}_{tag}_rescorer.weights.h5"
    save_float16_weights(classifier, os.path.join(weights_dir, file))
    arguments = figure_classifier_arguments(classifier)
    manifest = read_manifest(weights_dir)
    manifest[f"{name}/{tag}"]["rescorer"] = {
        "file": file,
        "sha256": file_sha256(os.path.join(weights_dir, file)),
        "arguments": arguments,
        "detection": {**detection, "figure_score": "classifier"},
        "training": training,
    }
    _write_manifest(manifest, weights_dir)
    return os.path.join(weights_dir, file)


def ship_settings(
    name,
    tag,
    *,
    source_tag,
    detection=None,
    rescorer_detection=None,
    rescorer=True,
    chosen_by=None,
    data=None,
    licence=None,
    weights_dir=None,
):
    """List ``name``/``tag`` as the weights (and figure classifier) of ``name``/``source_tag`` at other settings.

    No weights file is written: the new entry names the source's float16 files, so a detector whose settings
    are chosen again (on another validation set) ships without a second copy, and the old settings stay
    addressable under their own tag. ``tag`` may be ``source_tag`` itself (its settings replaced in place).

    Args:
        detection: the network-alone settings and their scores (``pixel_threshold``, ``min_area_um2``,
            ``score_threshold``, ``validation`` ...), replacing the source's; None keeps them.
        rescorer_detection: the settings with the figure classifier, replacing its card's; None keeps them.
        rescorer: False lists the new entry without the classifier, so ``mitoseg predict`` runs the network alone.
        chosen_by: what chose the settings, and what did not (the card's ``chosen_by``).
        data, licence: the card's sentences on the data and its terms, when the new settings change what they
            say (what validated them, what to cite); the weights' licence conditions do not change.

    Returns:
        The new entry, as written to the manifest.

    Raises:
        ValueError: ``name``/``source_tag`` does not ship, or ``rescorer_detection`` for an entry that ships
            without a classifier.
    """
    weights_dir = weights_folder(weights_dir)
    entry = json.loads(json.dumps(weights_entry(name, source_tag, weights_dir)))  # a deep copy
    entry.pop("path")  # this machine's, added by weights_entry
    if detection is not None:
        entry["detection"] = dict(detection)
    if not rescorer:
        entry.pop("rescorer", None)
    elif rescorer_detection is not None:
        if "rescorer" not in entry:
            raise ValueError(f"{name}/{source_tag} ships without a figure classifier; it has no settings to replace.")
        entry["rescorer"]["detection"] = {**rescorer_detection, "figure_score": "classifier"}
    for key, value in (("chosen_by", chosen_by), ("data", data), ("licence", licence)):
        if value is not None:
            entry[key] = value
    manifest = read_manifest(weights_dir)
    manifest[f"{name}/{tag}"] = entry
    _write_manifest(manifest, weights_dir)
    return entry
