"""A synthetic spectrum family with known generating parameters, for the AeLLE tests."""

from __future__ import annotations

import numpy as np


def spectrum_family(
    n: int,
    seed: int,
    *,
    dims: tuple[int, ...] = (8, 16, 24, 32, 48, 64),
    noise: float = 0.02,
) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Spectra ``lambda(u) = a - s * u**c`` at ``u = (i + 0.5) / D``, plus noise, sorted.

    The target peaks at ``a = 0`` (the edge of chaos) and at a middling spread ``s``, so it is
    monotone neither in the largest exponent nor in any other single exponent.

    Returns:
        ``(spectra, targets, params)``: ``n`` descending arrays of lengths drawn from ``dims``,
        ``n`` targets, and the generating parameters ``a``, ``s``, ``c``, ``d`` (each ``n``).
    """
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 0.6, n)
    s = rng.uniform(0.5, 3.0, n)
    c = rng.uniform(0.5, 2.0, n)
    d = rng.choice(np.asarray(dims), n)
    spectra = []
    for k in range(n):
        u = (np.arange(d[k]) + 0.5) / d[k]
        values = a[k] - s[k] * u ** c[k] + rng.normal(0.0, noise, d[k])
        spectra.append(np.sort(values)[::-1])
    targets = np.exp(-((a / 0.35) ** 2)) + 0.5 * np.exp(-(((s - 1.75) / 0.6) ** 2))
    return spectra, targets, {"a": a, "s": s, "c": c, "d": d}
