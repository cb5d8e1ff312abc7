"""``load_checkpoint`` lives in the zoo (``mitoseg_tf.zoo.checkpoint``); this name stays for its callers
in ``cli/``, ``detector/`` and ``training/run.py`` until they import it from there."""

from mitoseg_tf.zoo.checkpoint import load_checkpoint

__all__ = ["load_checkpoint"]
