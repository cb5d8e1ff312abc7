"""Trained weights shipped inside the package: ``build(name, weights="monuseg")``.

``mitoseg_tf/zoo/weights/manifest.json`` lists, per ``"<model>/<tag>"``, the
weights file (float16 ``.weights.h5``: half the size, and the networks run in
bfloat16/float16 anyway), the builder arguments it was trained with, the
decision threshold, the training data and its licence, and the validation
metrics. Loading casts the float16 values into the model's float32 variables.
"""

import json
import os

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
MANIFEST = "manifest.json"
# Builder arguments a user may still choose when loading trained weights: they do not change the weights.
FREE_ARGUMENTS = ("input_shape",)


def _manifest(weights_dir=None):
    path = os.path.join(weights_dir or WEIGHTS_DIR, MANIFEST)
    if not os.path.isfile(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def available_weights(name=None, weights_dir=None):
    """``{"<model>/<tag>": entry}`` of the shipped weights (of model ``name`` only, when given)."""
    return {k: v for k, v in _manifest(weights_dir).items() if name is None or k.split("/")[0] == name}


def weights_entry(name, tag, weights_dir=None):
    """The manifest entry of ``name`` with ``tag``; ValueError listing what is shipped otherwise."""
    entries = available_weights(weights_dir=weights_dir)
    key = f"{name}/{tag}"
    if key not in entries:
        shipped = ", ".join(sorted(entries)) or "none"
        raise ValueError(
            f"No shipped weights {tag!r} for model {name!r}; shipped (model/weights): {shipped}. "
            "Pass weights=<path to a .weights.h5 or .keras file> for your own."
        )
    return {**entries[key], "path": os.path.join(weights_dir or WEIGHTS_DIR, entries[key]["file"])}


def resolve_arguments(name, tag, overrides, weights_dir=None):
    """The builder arguments of shipped weights, refusing overrides that would change the network."""
    entry = weights_entry(name, tag, weights_dir)
    trained = entry["arguments"]
    conflicting = sorted(k for k, v in overrides.items() if k not in FREE_ARGUMENTS and trained.get(k, v) != v)
    extra = sorted(k for k in overrides if k not in FREE_ARGUMENTS and k not in trained)
    if conflicting or extra:
        raise ValueError(
            f"weights={tag!r} of {name} were trained with {trained}; the argument(s) "
            f"{', '.join(conflicting + extra)} would change the network. Only {', '.join(FREE_ARGUMENTS)} may be given."
        )
    return {**trained, **{k: v for k, v in overrides.items() if k in FREE_ARGUMENTS}}, entry


def save_float16_weights(model, path):
    """``model.save_weights(path)`` with every float array stored as float16 (shipping size).

    HDF5 does not reclaim deleted space, so the file is rewritten, not edited.
    """
    import tempfile

    import h5py
    import numpy as np

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


def ship_run(run_dir, tag, *, data, licence, weights_dir=None, extra=None, detection=False):
    """Copy a run's best checkpoint into the package as float16 weights and list it in the manifest.

    ``data`` and ``licence`` describe the training data (weights inherit its
    licence conditions); the run's config.json gives the model and builder
    arguments, metrics.json the validation metrics and, for detection weights
    (``detection=True``), detection.json the figure settings chosen on validation,
    which ``mitoseg predict`` then applies.
    """
    from mitoseg_tf.training.checkpoint import load_checkpoint

    weights_dir = weights_dir or WEIGHTS_DIR
    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    name = config["model"]
    arguments = {"base_filters": config["base_filters"], **config.get("model_args", {})}
    model = load_checkpoint(os.path.join(run_dir, "best.keras"))
    os.makedirs(weights_dir, exist_ok=True)
    file = f"{name}_{tag}.weights.h5"
    save_float16_weights(model, os.path.join(weights_dir, file))
    manifest = _manifest(weights_dir)
    manifest[f"{name}/{tag}"] = {
        "file": file,
        "arguments": arguments,
        "threshold": 0.5,
        "data": data,
        "licence": licence,
        "recipe": config.get("recipe"),
        "precision": config.get("resolved_precision"),
        "train_seconds": metrics.get("train_seconds"),
        "validation": metrics["validation"]["model"],
        **(extra or {}),
    }
    if detection:
        from mitoseg_tf.detection.evaluation import load_detection_settings

        settings = load_detection_settings(run_dir)
        if settings is None:
            raise FileNotFoundError(f"{run_dir} has no detection.json to ship with detection weights.")
        keep = ("score_threshold", "min_area_um2", "pixel_threshold", "match_distance_um", "figure_score", "mpp", "tta")
        manifest[f"{name}/{tag}"]["detection"] = {
            **{k: settings[k] for k in keep if k in settings},
            "validation": settings.get("validation_by_distance") or settings.get("validation"),
            # the in-sample score above flatters; the card carries the leave-one-image-out one beside it
            "validation_held_out": settings.get("validation_held_out"),
        }
    with open(os.path.join(weights_dir, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
    return os.path.join(weights_dir, file)


def rescorer_entry(name, tag, weights_dir=None):
    """The second-stage classifier shipped with ``name``/``tag`` (its ``rescorer`` card), or None."""
    entry = weights_entry(name, tag, weights_dir).get("rescorer")
    if entry is None:
        return None
    return {**entry, "path": os.path.join(weights_dir or WEIGHTS_DIR, entry["file"])}


def load_rescorer(name, tag, weights_dir=None):
    """The figure classifier that rescores the candidates of shipped detection weights; ValueError when none ships."""
    from mitoseg_tf.models.figure_classifier import build_figure_classifier

    entry = rescorer_entry(name, tag, weights_dir)
    if entry is None:
        with_rescorer = sorted(k for k, v in available_weights(weights_dir=weights_dir).items() if "rescorer" in v)
        raise ValueError(
            f"weights {name}/{tag} ship without a second-stage figure classifier; "
            f"shipped with one: {', '.join(with_rescorer) or 'none'}."
        )
    model = build_figure_classifier(**entry["arguments"])
    model.load_weights(entry["path"])
    return model


def ship_rescorer(classifier, name, tag, *, detection, training, weights_dir=None):
    """Store ``classifier`` (float16) beside the shipped ``name``/``tag`` weights, whose candidates it rescores.

    ``detection``: the settings chosen on the rescored candidates (pixel
    threshold of the candidates, size floor, classifier-score threshold and
    their validation scores); ``training``: what it was trained on and how.
    """
    from mitoseg_tf.models.figure_classifier import figure_classifier_arguments

    weights_dir = weights_dir or WEIGHTS_DIR
    weights_entry(name, tag, weights_dir)  # the weights it rescores must ship already
    file = f"{name}_{tag}_rescorer.weights.h5"
    save_float16_weights(classifier, os.path.join(weights_dir, file))
    arguments = figure_classifier_arguments(classifier)
    manifest = _manifest(weights_dir)
    manifest[f"{name}/{tag}"]["rescorer"] = {
        "file": file,
        "arguments": arguments,
        "detection": {**detection, "figure_score": "classifier"},
        "training": training,
    }
    with open(os.path.join(weights_dir, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
    return os.path.join(weights_dir, file)
