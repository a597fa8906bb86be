"""Turn spectra of any length into fixed-size, finite model inputs.

Notation:
    ``n``: number of spectra; ``D``: length of one spectrum (the state dimension of its network);
    ``G``: number of points of the common grid; ``u``: normalised index ``i / D`` in ``[0, 1]``.

Exponent ``i`` (0-based, descending order) of a spectrum of length ``D`` sits at
``u = (i + 0.5) / D``. Grid point ``j`` is the average over ``u`` in ``[j / G, (j + 1) / G)`` of
the piecewise-linear curve through those points (constant beyond the first and last exponent),
so spectra of networks of different sizes land on the same ``G`` inputs and a long spectrum is
averaged, not subsampled.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Names of the per-spectrum side inputs built next to the resampled grid, in column order.
AUX_NAMES: tuple[str, ...] = ("log_dim", "frac_nonfinite", "frac_clipped_high", "frac_clipped_low")


def as_spectrum_list(spectra: Any) -> list[np.ndarray]:
    """Convert the accepted spectrum containers to a list of float64 1-D arrays.

    Args:
        spectra: A 2-D array or tensor (one spectrum per row), or a sequence whose items are 1-D
            arrays, tensors, or objects with an ``exponents`` attribute (a ``LyapunovSpectrum``).
            Lengths may differ between items.

    Returns:
        A list of ``n`` float64 arrays, each of shape ``D_k`` with ``D_k >= 1``.
    """
    if isinstance(spectra, torch.Tensor):
        spectra = spectra.detach().cpu().to(torch.float64).numpy()
    if isinstance(spectra, np.ndarray) and spectra.dtype != object:
        if spectra.ndim != 2:
            raise ValueError(
                "spectra as an array must be 2-D (one spectrum per row); pass a list of 1-D "
                f"arrays for spectra of different lengths, but got {spectra.shape=}."
            )
        items: list[Any] = list(spectra)
    elif isinstance(spectra, (str, bytes)) or not isinstance(spectra, Sequence | np.ndarray):
        raise TypeError(
            "spectra must be a 2-D array or a sequence of 1-D arrays, but got "
            f"{type(spectra).__name__}."
        )
    else:
        items = list(spectra)
    out = []
    for k, item in enumerate(items):
        if hasattr(item, "exponents"):
            item = item.exponents
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().to(torch.float64).numpy()
        arr = np.asarray(item, dtype=np.float64)
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise ValueError(
                f"each spectrum must be a non-empty 1-D array, but spectrum {k} has shape "
                f"{arr.shape}."
            )
        out.append(arr)
    if not out:
        raise ValueError("spectra is empty; at least one spectrum is needed.")
    return out


@functools.lru_cache(maxsize=256)
def _resampling_matrix(dim: int, grid_size: int) -> np.ndarray:
    """The linear map from a length-``dim`` spectrum to the grid, a ``G x D`` float64 array."""
    sub = 4 * max(1, math.ceil(dim / grid_size))  # enough points per bin to see every exponent
    u_fine = (np.arange(grid_size * sub, dtype=np.float64) + 0.5) / (grid_size * sub)
    u_spec = (np.arange(dim, dtype=np.float64) + 0.5) / dim
    # Column i is the grid image of the i-th unit vector: the map is linear in the exponents.
    matrix = np.empty((grid_size, dim))
    eye = np.eye(dim)
    for i in range(dim):
        matrix[:, i] = np.interp(u_fine, u_spec, eye[i]).reshape(grid_size, sub).mean(axis=1)
    matrix.setflags(write=False)
    return matrix


def sanitize_spectrum(
    spectrum: np.ndarray, clip: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Make one spectrum finite, bounded and sorted, and measure what had to be changed.

    NaN (a diverged trajectory) and ``+inf`` become ``clip[1]``: divergence is the expanding end.
    ``-inf`` (a direction killed exactly, e.g. a dead ReLU) becomes ``clip[0]``.

    Args:
        spectrum: A ``D`` float64 array in nats per step, any order.
        clip: ``(low, high)`` bounds in nats per step.

    Returns:
        ``(values, flags)``: the ``D`` clipped values sorted in descending order, and a ``3`` array
        of the fractions of entries that were NaN, above ``high`` (incl. ``+inf``) and below
        ``low`` (incl. ``-inf``).
    """
    low, high = clip
    nan = np.isnan(spectrum)
    filled = np.where(nan, high, spectrum)
    above = (filled > high) & ~nan
    below = filled < low
    values = -np.sort(-np.clip(filled, low, high))
    flags = np.array([nan.mean(), above.mean(), below.mean()], dtype=np.float64)
    return values, flags


def preprocess_spectra(
    spectra: list[np.ndarray], grid_size: int, clip: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Resample spectra of any lengths onto the common grid and build their side inputs.

    Args:
        spectra: ``n`` float64 arrays of lengths ``D_k`` (from :func:`as_spectrum_list`).
        grid_size: ``G``, the number of grid points.
        clip: ``(low, high)`` bounds applied before resampling, nats per step.

    Returns:
        ``(grid, aux)``: an ``n x G`` float64 array of finite values in ``[low, high]``, and an
        ``n x 4`` float64 array with columns :data:`AUX_NAMES` (``log D`` and three fractions).
    """
    grid = np.empty((len(spectra), grid_size))
    aux = np.empty((len(spectra), len(AUX_NAMES)))
    for k, spectrum in enumerate(spectra):
        values, flags = sanitize_spectrum(spectrum, clip)
        grid[k] = _resampling_matrix(values.shape[0], grid_size) @ values
        aux[k, 0] = math.log(values.shape[0])
        aux[k, 1:] = flags
    return grid, aux


def grid_points(grid_size: int) -> np.ndarray:
    """The normalised index at the centre of each grid bin, a ``G`` float64 array."""
    return (np.arange(grid_size, dtype=np.float64) + 0.5) / grid_size


def feature_array(features: Any, n: int | None) -> np.ndarray:
    """Extra features as an ``n x f`` float64 array (a 1-D array is one column).

    Raises:
        ValueError: ``features`` is not numeric, has no column, or (with ``n``) has not ``n``
            rows.
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    try:
        arr = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"features must be a numeric n x f array, but got {type(features).__name__}."
        ) from err
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"features must be an n x f array with f >= 1, but got {arr.shape=}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"features must have one row per sample ({n}), but got {arr.shape[0]} rows."
        )
    return arr


def target_array(targets: Any) -> np.ndarray:
    """Targets as a 1-D float64 array; NaN marks an unlabelled sample.

    Raises:
        ValueError: ``targets`` is not 1-D, or holds an infinity (the message names where).
    """
    y = np.asarray(
        targets.detach().cpu().numpy() if isinstance(targets, torch.Tensor) else targets,
        dtype=np.float64,
    )
    if y.ndim != 1:
        raise ValueError(f"targets must be a 1-D array, but got {y.shape=}.")
    if np.isinf(y).any():
        raise ValueError(
            "targets must be finite or NaN (NaN = unlabelled), but got infinite values at "
            f"indices {np.flatnonzero(np.isinf(y)).tolist()}."
        )
    return y
