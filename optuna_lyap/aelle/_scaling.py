"""How AeLLE scales its inputs and targets: robust centre and spread, then a smooth squash.

Robustly standardised inputs and targets are squashed into ``(-SQUASH, SQUASH)``: a diverged
network or an exploding loss must not dictate the scale of everything else.
"""

from __future__ import annotations

import numpy as np
import torch

SQUASH = 4.0
#: The dtype of every tensor the network reads.
DTYPE = torch.float32


def robust_scale(values: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust spread of each column of an ``n x c`` array, ignoring non-finite values.

    The spread is the interquartile range / 1.349 (the standard deviation for Gaussian data),
    the standard deviation where more than half the values are equal, and at least ``floor``.
    A column without finite values gets centre 0 and scale 1.
    """
    centre = np.zeros(values.shape[1])
    scale = np.ones(values.shape[1])
    for j in range(values.shape[1]):
        column = values[:, j][np.isfinite(values[:, j])]
        if column.size == 0:
            continue
        q25, centre[j], q75 = np.percentile(column, [25.0, 50.0, 75.0])
        spread = (q75 - q25) / 1.349
        if spread <= 0.0:
            spread = float(column.std())
        scale[j] = max(spread, floor)
    return centre, scale


def squash(z: np.ndarray) -> np.ndarray:
    """``B tanh(z / B)``: the identity near 0, bounded by ``B``, order preserving."""
    return SQUASH * np.tanh(z / SQUASH)


def unsquash(v: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_squash` (outputs outside the bound are held just inside it)."""
    return SQUASH * np.arctanh(np.clip(v / SQUASH, -0.999, 0.999))


def standardise(values: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    z = (values - centre) / scale
    return torch.as_tensor(squash(np.where(np.isfinite(z), z, 0.0)), dtype=DTYPE)


def spectrum_scale(raw: np.ndarray, grid_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of the spectrum inputs (``grid_size`` grid points, then side inputs).

    The grid points' spreads are floored at a tenth of their median spread (at least 1e-6), so
    a nearly constant point is not blown up; the side inputs' at 0.25.
    """
    g = grid_size
    centre, spread = robust_scale(raw, 0.0)
    grid_floor = max(0.1 * float(np.median(spread[:g])), 1e-6)
    scale = np.concatenate([np.maximum(spread[:g], grid_floor), np.maximum(spread[g:], 0.25)])
    return centre, scale
