"""Reproducibility: seeding, op determinism, and what a run folder records about its run."""

import importlib.metadata
import platform

import keras

from mitoseg_tf import __version__


def seed_everything(seed, deterministic=True):
    """Seed Python, NumPy and the backend; with ``deterministic`` also turn on TensorFlow op determinism.

    Op determinism makes every TensorFlow kernel pick a deterministic
    implementation (or raise when it has none), so two runs with the same seed
    give bitwise-identical weights. It is process-wide and cannot be undone
    safely, so it is only ever switched on. Other backends: seeding only.
    """
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # TensorFlow backend only: importing mitoseg_tf.training never needs it

        tf.config.experimental.enable_op_determinism()


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions():
    """Versions of the software a run used (None for packages that are not installed)."""
    return {
        "mitoseg_tf": __version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": _version("tensorflow"),
        "numpy": _version("numpy"),
        "jax": _version("jax"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def config_differences(saved, requested, ignore=()):
    """``key: saved -> requested`` for every key whose value differs between two config dicts."""
    keys = sorted((set(saved) | set(requested)) - set(ignore))
    missing = object()
    return [
        f"{k}: run folder has {saved.get(k, '(absent)')!r}, requested {requested.get(k, '(absent)')!r}"
        for k in keys
        if saved.get(k, missing) != requested.get(k, missing)
    ]
