"""``mitoseg compare``: the paper's Table 1 and Table 2 (and Figure 5) redone on any dataset.

    >>> from mitoseg_tf.compare import CompareConfig, run_compare
    >>> run_compare(CompareConfig(output_dir="compare", repeats=3, budget_minutes=50))

``run_recipe_compare`` (``mitoseg compare --recipe``) trains a comparison recipe
and records each run in the repository; ``build_report`` (``--report``) rebuilds
the tables from those records without TensorFlow, so the trainers load lazily;
``ship_comparison`` (``--ship TAG``) ships each Table 2 network's best recorded seed as zoo weights.
"""

import importlib

from mitoseg_tf.compare.selection import resolve_models, table_models

_LAZY = {
    "CompareConfig": "mitoseg_tf.config",
    "is_finished": "mitoseg_tf.compare.runner",
    "run_compare": "mitoseg_tf.compare.runner",
    "run_recipe_compare": "mitoseg_tf.compare.recipe",
    "load_compare_recipe": "mitoseg_tf.compare.recipe",
    "build_report": "mitoseg_tf.compare.report",
    "ship_comparison": "mitoseg_tf.compare.shipping",
}

__all__ = ["resolve_models", "table_models", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
