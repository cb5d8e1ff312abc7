"""Shared training helpers: precision, compile, fit, evaluate, run reports."""

from mitoseg_tf.models.outputs import output_roles
from mitoseg_tf.training.compile import compile_model, make_optimizer
from mitoseg_tf.training.evaluate import evaluate, format_table
from mitoseg_tf.training.fit import fit, monitor_key
from mitoseg_tf.training.precision import PRECISIONS, resolve_precision, set_precision

__all__ = [
    "PRECISIONS",
    "compile_model",
    "evaluate",
    "fit",
    "format_table",
    "make_optimizer",
    "monitor_key",
    "output_roles",
    "resolve_precision",
    "set_precision",
]
