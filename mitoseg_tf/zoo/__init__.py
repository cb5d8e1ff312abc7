"""The model zoo: build any network by name.

    >>> from mitoseg_tf.zoo import build, list_models
    >>> model = build("mcsa_unet")                       # paper defaults
    >>> tiny = build("mcsa_unet", base_filters=8, input_shape=(64, 64, 3))
    >>> list_models("unet*")

Importing the zoo imports no Keras: the registry's cards and the shipped weights'
cards are plain data (``mitoseg models`` and ``mitoseg weights`` list them in a
fraction of a second), and each builder is imported when first used.
"""

import importlib

from mitoseg_tf import _import_hook
from mitoseg_tf.zoo import entries as _entries  # registers the built-in models
from mitoseg_tf.zoo.registry import ModelCard, build, get_card, list_models, register

# What a .keras file written by the zoo may name: its layers and models (a compiled one, its losses and metrics).
SERIALIZABLE_MODULES = (
    *sorted({path.split(":")[0] for path in _entries.BUILDERS.values()}),
    "mitoseg_tf.models.figure_classifier",
    "mitoseg_tf.losses",
    "mitoseg_tf.metrics",
)


def _register_with_keras():
    # Imports only (no attribute access): this may run while one of these modules is itself being imported.
    for module in SERIALIZABLE_MODULES:
        importlib.import_module(module)


# Registered with Keras as soon as Keras is imported (now, if it is), so plain keras.models.load_model
# opens a run's best.keras once the zoo is imported, in whichever order the two are.
_import_hook.after_import("keras", _register_with_keras)

__all__ = ["ModelCard", "build", "get_card", "list_models", "register"]
