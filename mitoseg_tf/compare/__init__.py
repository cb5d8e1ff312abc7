"""``mitoseg compare``: the paper's Table 1 and Table 2 (and Figure 5) redone on any dataset.

    >>> from mitoseg_tf.compare import CompareConfig, run_compare
    >>> run_compare(CompareConfig(output_dir="compare", repeats=3, budget_minutes=50))
"""

from mitoseg_tf.compare.runner import CompareConfig, is_finished, run_compare
from mitoseg_tf.compare.selection import resolve_models, table_models

__all__ = ["CompareConfig", "is_finished", "resolve_models", "run_compare", "table_models"]
