"""The 8 symmetries of the square (dihedral group D4) for test-time augmentation."""

import numpy as np

NUM_TRANSFORMS = 8


def forward(batch, k):
    """Transform ``k`` (0-7) of a batch (B, H, W, ...): rotate by ``k % 4`` quarter turns, then mirror if ``k >= 4``."""
    out = np.rot90(batch, k % 4, axes=(1, 2))
    return out[:, :, ::-1] if k >= 4 else out


def inverse(batch, k):
    """Undo ``forward(., k)`` on a batch of maps (B, H, W, ...)."""
    out = batch[:, :, ::-1] if k >= 4 else batch
    return np.rot90(out, -(k % 4), axes=(1, 2))
