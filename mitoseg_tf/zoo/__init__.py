"""The model zoo: build any network by name.

    >>> from mitoseg_tf.zoo import build, list_models
    >>> model = build("mcsa_unet")                       # paper defaults
    >>> tiny = build("mcsa_unet", base_filters=8, input_shape=(64, 64, 3))
    >>> list_models("unet*")
"""

from mitoseg_tf.zoo.registry import ModelCard, build, get_card, list_models, register
from mitoseg_tf.zoo import entries as _entries  # noqa: F401  (registers the built-in models)

# A compiled .keras checkpoint names the package's losses and metrics as well as its layers: registering
# them here lets plain keras.models.load_model open a run's best.keras once the zoo is imported.
from mitoseg_tf import losses as _losses, metrics as _metrics  # noqa: F401

__all__ = ["ModelCard", "build", "get_card", "list_models", "register"]
