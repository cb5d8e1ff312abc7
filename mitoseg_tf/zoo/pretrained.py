"""Trained weights shipped inside the package: ``build(name, weights="monuseg")``.

``mitoseg_tf/zoo/weights/manifest.json`` lists, per ``"<model>/<tag>"``, the
weights file (float16 ``.weights.h5``: half the size, and the networks run in
bfloat16/float16 anyway), the builder arguments it was trained with, the
decision threshold, the training data and its licence, and the validation
metrics. Loading casts the float16 values into the model's float32 variables.
The manifest is read by ``weights_card.read_manifest`` (typed: ``weights_card``);
``shipping`` writes it.
"""

import hashlib
import os

from mitoseg_tf.zoo.weights_card import read_manifest, weights_folder

# Builder arguments a user may still choose when loading trained weights: they do not change the weights.
FREE_ARGUMENTS = ("input_shape",)


def available_weights(name=None, weights_dir=None):
    """``{"<model>/<tag>": entry}`` of the shipped weights (of model ``name`` only, when given)."""
    return {k: v for k, v in read_manifest(weights_dir).items() if name is None or k.split("/")[0] == name}


def file_sha256(path):
    """The SHA-256 of a file, hex (what the manifest's ``sha256`` holds for each weights file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_path(entry, key):
    """``entry["path"]`` when the file is there and has the manifest's SHA-256; else an error naming the file.

    A weights file cut short, swapped for another or edited would otherwise load
    into the network (or fail deep in h5py) and give wrong figures without a word.
    """
    path = entry["path"]
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights {key}: the manifest lists {entry['file']}, which is missing from {os.path.dirname(path)}."
        )
    expected = entry.get("sha256")
    if expected is not None and file_sha256(path) != expected:
        raise ValueError(
            f"weights {key}: {path} does not have the SHA-256 the manifest records ({expected[:12]}...); "
            "the file is damaged or was replaced. Reinstall the package or ship the weights again."
        )
    return path


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
    return {**entries[key], "path": os.path.join(weights_folder(weights_dir), entries[key]["file"])}


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


def rescorer_entry(name, tag, weights_dir=None):
    """The second-stage classifier shipped with ``name``/``tag`` (its ``rescorer`` card), or None."""
    entry = weights_entry(name, tag, weights_dir).get("rescorer")
    if entry is None:
        return None
    return {**entry, "path": os.path.join(weights_folder(weights_dir), entry["file"])}


def load_rescorer(name, tag, weights_dir=None):
    """The figure classifier that rescores the candidates of shipped detection weights; ValueError when none ships."""
    entry = rescorer_entry(name, tag, weights_dir)
    if entry is None:
        with_rescorer = sorted(k for k, v in available_weights(weights_dir=weights_dir).items() if "rescorer" in v)
        raise ValueError(
            f"weights {name}/{tag} ship without a second-stage figure classifier; "
            f"shipped with one: {', '.join(with_rescorer) or 'none'}."
        )
    from mitoseg_tf.models.figure_classifier import build_figure_classifier  # Keras: only when loading

    path = checked_path(entry, f"{name}/{tag} (figure classifier)")
    model = build_figure_classifier(**entry["arguments"])
    model.load_weights(path)
    return model
