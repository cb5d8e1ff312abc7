"""The model registry: one name -> one builder, its defaults and its card.

timm-style: ``@register("name", ...)`` on a builder, ``build(name, **overrides)``,
``list_models("unet*")``. The registry knows nothing about individual networks;
``mitoseg_tf.zoo.entries`` registers the built-in ones, each builder named by its
import path (``"module:function"``) and imported when first used, so listing the
zoo and reading its cards imports no Keras.
"""

import dataclasses
import difflib
import fnmatch
import functools
import importlib
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mitoseg_tf.zoo.pretrained import available_weights, checked_path, resolve_arguments

if TYPE_CHECKING:  # annotations only: listing the zoo must not import Keras
    import keras

_REGISTRY: dict[str, "ModelCard"] = {}


class LazyBuilder:
    """A builder named ``"package.module:function"``, imported on first call or signature lookup."""

    def __init__(self, path: str):
        self.path = path

    @functools.cached_property
    def function(self) -> Callable[..., Any]:
        module, name = self.path.split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.function)

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __repr__(self):
        return f"LazyBuilder({self.path!r})"


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a user needs to know about a registered model before building it."""

    name: str
    builder: Callable[..., Any]
    defaults: dict
    summary: str
    reference: str
    paper: str = ""
    paper_results: dict = dataclasses.field(default_factory=dict)
    notes: str = ""
    tags: tuple = ()
    tiny: dict = dataclasses.field(default_factory=dict)
    # Parameters at the defaults, stored so `mitoseg models` need not build 30-60 M-parameter networks;
    # tests/zoo/test_parameter_counts.py builds each and checks the number.
    parameters: int | None = None

    @property
    def arguments(self) -> list[str]:
        """Every keyword the builder names (what ``build`` overrides may name)."""
        params = inspect.signature(self.builder).parameters.values()
        return [p.name for p in params if p.name != "name" and p.kind != inspect.Parameter.VAR_KEYWORD]

    @property
    def accepts_any_argument(self) -> bool:
        """A ``**kwargs`` builder: argument names are checked by the builder itself."""
        params = inspect.signature(self.builder).parameters.values()
        return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)

    def width_arguments(self, base_filters) -> dict:
        """``{"base_filters": base_filters}`` for networks with a base width, ``{}`` for those without
        (the detector's widths are its backbone's), so one run recipe builds every network."""
        return {"base_filters": base_filters} if "base_filters" in self.arguments or self.accepts_any_argument else {}

    def check_defaults(self) -> None:
        """ValueError when the card's defaults or ``tiny`` name an argument its builder does not take."""
        unknown = sorted((set(self.defaults) | set(self.tiny)) - set(self.arguments))
        if unknown and not self.accepts_any_argument:
            raise ValueError(f"Defaults {unknown} of {self.name!r} are not arguments of its builder {self.arguments}.")

    def resolved_config(self, **overrides) -> dict:
        """Builder defaults, then the card's defaults, then the overrides."""
        signature = inspect.signature(self.builder)
        config = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
        config.update(self.defaults)
        config.update(overrides)
        config["name"] = self.name
        return config


def register(
    name,
    *,
    summary,
    reference,
    paper="",
    paper_results=None,
    notes="",
    tags=(),
    tiny=None,
    parameters=None,
    overwrite=False,
    **defaults,
):
    """Decorator registering ``builder`` under ``name`` with default arguments.

    ``tiny`` holds overrides that make a very small instance of the network
    (tests, notebooks and smoke runs build it with ``build(name, **card.tiny)``).
    ``parameters``: the parameter count at the defaults, shown by ``mitoseg models``.

    The decorated builder may be a function or its import path ``"package.module:function"``
    (imported when first built; its defaults are then checked by ``tests/zoo/test_registry.py``).

    Example:
        >>> @register("tiny_unet", summary="U-Net at width 8", reference="", base_filters=8)
        ... def tiny(**kwargs):
        ...     return build_unet(**kwargs)
    """
    if not name or name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"Model names are lower-case letters, digits and '_'; got {name!r}.")

    def decorator(builder):
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"A model named {name!r} is already registered; pass overwrite=True to replace it.")
        card = ModelCard(
            name=name,
            builder=LazyBuilder(builder) if isinstance(builder, str) else builder,
            defaults=dict(defaults),
            summary=summary,
            reference=reference,
            paper=paper,
            paper_results=dict(paper_results or {}),
            notes=notes,
            tags=tuple(tags),
            tiny=dict(tiny or {}),
            parameters=parameters,
        )
        if not isinstance(card.builder, LazyBuilder):  # checking would import it
            card.check_defaults()
        _REGISTRY[name] = card
        return builder

    return decorator


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """The registered model names that match a shell-style wildcard.

    Args:
        pattern: an ``fnmatch`` wildcard, case-sensitive, e.g. ``"unet*"``.
        pretrained: only the models with weights shipped in the package's manifest
            (``build(name, weights=TAG)``; ``mitoseg weights`` lists their tags).

    Returns:
        The matching names, sorted; empty when none matches.
    """
    shipped = {key.split("/")[0] for key in available_weights()} if pretrained else None
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern) and (shipped is None or n in shipped))


def get_card(name: str) -> ModelCard:
    """The card of a registered model: its builder, defaults, summary, reference and parameter count.

    Args:
        name: a registered name (see ``list_models``).

    Returns:
        The model's ``ModelCard``.

    Raises:
        ValueError: ``name`` is not registered; the message lists close matches and every registered name.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}.")
    return _REGISTRY[name]


def build(name: str, weights: str | None = None, **overrides: Any) -> "keras.Model":
    """Build a registered model; ``overrides`` replace its default arguments.

    Args:
        name: a registered name (see ``list_models``).
        weights: None (random initialisation), the tag of weights shipped with
            the package (``"monuseg"``, ``"mitosis"``; see ``pretrained.available_weights``),
            which also fixes the architecture arguments they were trained with, or the
            path of a ``.weights.h5`` file for a model built with ``overrides``.
        **overrides: builder arguments that replace the card's defaults
            (``base_filters``, ``input_shape``, ...).

    Returns:
        The Keras model, uncompiled.

    Raises:
        ValueError: an unknown name, an argument the builder does not take, a
            bad argument value, or a weights tag that does not ship.
        FileNotFoundError: ``weights`` names a ``.weights.h5`` file that does not exist.

    Example:
        >>> model = build("mcsa_unet", base_filters=8, input_shape=(64, 64, 3))
    """
    if weights is not None:
        return _build_with_weights(name, weights, overrides)
    card = get_card(name)
    unknown = sorted(set(overrides) - set(card.arguments))
    if unknown and not card.accepts_any_argument:
        raise ValueError(
            f"{name} does not take argument(s) {', '.join(unknown)}. Valid arguments: {', '.join(card.arguments)}."
        )
    try:
        return card.builder(**card.resolved_config(**overrides))
    except TypeError as err:
        raise ValueError(f"Bad arguments for {name}: {err}. Valid arguments: {', '.join(card.arguments)}.") from err


def _build_with_weights(name, weights, overrides):
    get_card(name)
    if isinstance(weights, str) and (os.sep in weights or weights.endswith(".h5")):
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"weights file {weights} not found.")
        model, path = build(name, **overrides), weights
    else:
        arguments, entry = resolve_arguments(name, weights, overrides)
        path = checked_path(entry, f"{name}/{weights}")
        model = build(name, **arguments)
    model.load_weights(path)
    return model
