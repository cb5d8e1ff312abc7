"""Choosing the dtype policy.

``auto`` picks mixed float16 on GPUs, mixed bfloat16 on CPUs that have native
bfloat16 arithmetic (AVX-512 BF16 or AMX), float32 otherwise. Losses, metrics
and every model's output layer stay float32 whatever is chosen. The policy must
be set before a model is built: layers take their dtype when they are created.
"""

import functools
import os

import keras

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@functools.lru_cache(maxsize=1)
def cpu_has_bfloat16():
    """True when the CPU advertises native bfloat16 instructions (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def gpu_available():
    """Whether the active Keras backend sees a GPU, asked without importing other frameworks."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return torch.cuda.is_available()
    except Exception:  # a broken driver means no usable GPU, not a crash
        return False
    return False


def resolve_precision(precision="auto"):
    """Turn ``auto`` into a concrete Keras policy name; reject unknown names."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    if os.environ.get("MITOSEG_PRECISION") in PRECISIONS[1:]:
        return os.environ["MITOSEG_PRECISION"]
    if gpu_available():
        return "mixed_float16"
    if cpu_has_bfloat16():
        return "mixed_bfloat16"
    return "float32"


def slow_precision_warning(resolved):
    """A warning when ``resolved`` is bfloat16 on a CPU that would emulate it, else None.

    Measured on a 2-core AVX2-only EPYC: the mitosis U-Net recipe took about 10 s a
    step in mixed bfloat16 against 1.7 s in float32; with AVX-512 BF16 bfloat16 is the faster one.
    """
    if resolved != "mixed_bfloat16" or cpu_has_bfloat16() or gpu_available():
        return None
    return (
        "precision mixed_bfloat16 on a CPU without native bfloat16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
        "it is emulated and several times slower than float32 here; precision 'auto' picks float32 on this machine."
    )


def set_precision(precision="auto"):
    """Resolve and set the global Keras dtype policy; returns the policy name."""
    resolved = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(resolved)
    return resolved
