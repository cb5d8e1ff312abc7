"""Loading saved zoo models with a clear error when the file is not one.

Importing this module runs ``mitoseg_tf/zoo/__init__.py`` first, which registers
every serializable layer, model, loss and metric of the package, so that a
``.keras`` file written by the zoo (a run's compiled ``best.keras`` too) loads.
"""

import os
import zipfile

import keras


def load_checkpoint(path, compile=False):
    """Load a ``.keras`` file written by the zoo (custom layers are registered on import)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Checkpoint {path!r} does not exist or is not a file; expected a .keras model file.")
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        raise ValueError(f"Checkpoint {path!r} is not a Keras .keras archive (a zip written by model.save).")
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as err:  # corrupt archives fail in many ways deep in Keras
        raise ValueError(f"Could not load checkpoint {path!r}: {type(err).__name__}: {err}") from err
