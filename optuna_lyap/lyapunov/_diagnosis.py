"""What a Lyapunov spectrum says about a network's dynamics: regime, memory, dimension.

Notation:
    ``lambda_1 >= lambda_2 >= ... >= lambda_k``: the exponents, natural log per time step
    (nats per step), as :func:`~optuna_lyap.lyapunov_spectrum` returns and
    :func:`~optuna_lyap.report_spectrum` stores them. ``S_j = lambda_1 + ... + lambda_j``.

Quantities:
    * **Regime.** ``chaotic`` when ``lambda_1 > margin`` (nearby hidden states separate),
      ``ordered`` when ``lambda_1 < -margin`` (they converge, the network forgets), ``edge``
      (near the edge of chaos) in between. ``margin`` is the larger of :data:`EDGE_MARGIN`
      and :data:`STDERR_FACTOR` standard errors of ``lambda_1`` when a standard error is known,
      so "clearly chaotic" means beyond both the sampling error of the estimate and the
      documented margin. The edge of chaos as the regime where recurrent networks compute
      best: Bertschinger & Natschlaeger, "Real-time computation at the edge of chaos in
      recurrent neural networks", Neural Computation 16(7), 2004.
    * **Memory horizon** ``1 / |lambda_1|`` in steps: the time over which a perturbation of the
      hidden state shrinks (ordered) or grows (chaotic) by a factor ``e``, i.e. the Lyapunov
      time. In the ordered regime it bounds how long an input's trace stays in the state; in
      the chaotic regime it bounds how long the state is predictable.
    * **Kaplan-Yorke (Lyapunov) dimension** ``D_KY = j + S_j / |lambda_{j+1}|`` with ``j`` the
      largest index with ``S_j >= 0`` (0 when ``lambda_1 < 0``): Kaplan & Yorke, "Chaotic
      behavior of multidimensional difference equations", Lecture Notes in Mathematics 730,
      1979; its equality with the information dimension of the attractor is the Kaplan-Yorke
      conjecture, Frederickson, Kaplan, Yorke & Yorke, "The Liapunov dimension of strange
      attractors", J. Differential Equations 49, 1983. With a thin spectrum (``k < D``) whose
      partial sums are all non-negative it is ``k``, a lower bound.

Non-finite exponents: ``-inf`` (a direction contracted to zero, e.g. a saturated unit) is a
valid exponent; ``NaN`` (a diverged estimate) entries are dropped, and a spectrum with no
finite leading exponent has regime ``undefined``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

EDGE_MARGIN = 0.01
"""Nats per step: ``|lambda_1|`` below this is near the edge of chaos. A perturbation then
changes by less than a factor ``e`` over 100 steps, longer than the sequences of the built-in
tasks (25 to 100 steps), so over one sequence the network neither clearly forgets nor clearly
amplifies it."""

STDERR_FACTOR = 2.0
"""Standard errors of ``lambda_1`` (over the probe sequences) a regime must clear, when known."""

MAX_MEMORY_HORIZON = 1e6
"""Steps: the memory horizon stored as a user attr is capped here (``lambda_1 == 0`` exactly
would make it infinite, which an attr cannot hold)."""

REGIME_CODES = {"ordered": -1, "edge": 0, "chaotic": 1}
"""The numeric code of each regime (the value ``regime`` of :func:`diagnosis_values`)."""


@dataclass(frozen=True)
class Diagnosis:
    """The dynamics a spectrum describes.

    Attributes:
        regime: ``"chaotic"``, ``"edge"``, ``"ordered"`` or ``"undefined"`` (no finite
            leading exponent).
        lambda_1: The largest exponent, nats per step (NaN when undefined).
        margin: The half-width of the edge band used, nats per step.
        memory_horizon: ``1 / |lambda_1|`` in steps (``inf`` when ``lambda_1 == 0``, NaN when
            undefined).
        kaplan_yorke_dimension: ``D_KY`` (NaN when undefined).
        n_positive: How many exponents are positive.
        k: How many finite or ``-inf`` exponents were read.

    Example:
        >>> from optuna_lyap import Diagnosis, diagnose
        >>> diagnosis = diagnose([-0.5, -1.0])
        >>> isinstance(diagnosis, Diagnosis), diagnosis.regime, diagnosis.memory_horizon
        (True, 'ordered', 2.0)
    """

    regime: str
    lambda_1: float
    margin: float
    memory_horizon: float
    kaplan_yorke_dimension: float
    n_positive: int
    k: int


def _clean(exponents: np.ndarray | list[float]) -> np.ndarray:
    array = np.asarray(exponents, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(
            f"exponents must be a 1-D array of a spectrum, but got shape {array.shape}."
        )
    return np.sort(array[~np.isnan(array)])[::-1]


def kaplan_yorke_dimension(exponents: np.ndarray | list[float]) -> float:
    """The Kaplan-Yorke (Lyapunov) dimension of a spectrum.

    Args:
        exponents: A ``k`` array of exponents (any order; NaN entries dropped).

    Returns:
        ``D_KY = j + S_j / |lambda_{j+1}|`` (see the module's notation): 0 when
        ``lambda_1 < 0``, ``k`` when every partial sum is non-negative, NaN for an empty or
        all-NaN spectrum or a ``+inf`` exponent. Source: Kaplan & Yorke 1979.
    """
    lam = _clean(exponents)
    if lam.size == 0 or lam[0] == math.inf:
        return math.nan
    if lam[0] < 0:
        return 0.0
    partial = np.cumsum(lam)
    nonneg = partial >= 0
    j = int(np.cumprod(nonneg).sum())
    if j == lam.size:
        return float(j)
    return j + float(partial[j - 1]) / abs(float(lam[j]))


def diagnose(
    exponents: np.ndarray | list[float],
    *,
    stderr: float | None = None,
    margin: float = EDGE_MARGIN,
) -> Diagnosis:
    """Diagnose the dynamics of one spectrum: regime, memory horizon, Kaplan-Yorke dimension.

    The regime is ``chaotic`` when ``lambda_1`` exceeds the edge band, ``ordered`` below minus
    it, ``edge`` within (edge of chaos: Bertschinger & Natschlaeger 2004); the memory horizon
    is the Lyapunov time ``1 / |lambda_1|``; the dimension is Kaplan & Yorke's (1979). The
    module docstring gives the definitions and full references.

    Args:
        exponents: A ``k`` array of exponents in nats per step (NaN entries dropped).
        stderr: The standard error of ``lambda_1`` over the probe sequences, if known
            (``LyapunovSpectrum.stderr[0]``); it widens the edge band to
            ``STDERR_FACTOR * stderr`` where that exceeds ``margin``.
        margin: The half-width of the edge band, nats per step. Default :data:`EDGE_MARGIN`.

    Returns:
        A :class:`Diagnosis`.

    Raises:
        ValueError: ``margin`` or ``stderr`` negative or not finite, or ``exponents`` not 1-D.

    Example:
        >>> from optuna_lyap import diagnose
        >>> diagnosis = diagnose([0.05, -0.2, -1.0])
        >>> diagnosis.regime, diagnosis.n_positive, diagnosis.memory_horizon
        ('chaotic', 1, 20.0)
        >>> diagnosis.kaplan_yorke_dimension  # 1 + 0.05 / 0.2
        1.25
    """
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite non-negative number, but got {margin=}.")
    if stderr is not None and not (math.isfinite(stderr) and stderr >= 0):
        raise ValueError(
            f"stderr must be a finite non-negative number or None, but got {stderr=}."
        )
    lam = _clean(exponents)
    band = margin if stderr is None else max(margin, STDERR_FACTOR * stderr)
    if lam.size == 0 or not (math.isfinite(lam[0]) or lam[0] == -math.inf):
        return Diagnosis("undefined", math.nan, band, math.nan, math.nan, 0, int(lam.size))
    lambda_1 = float(lam[0])
    if lambda_1 > band:
        regime = "chaotic"
    elif lambda_1 < -band:
        regime = "ordered"
    else:
        regime = "edge"
    horizon = math.inf if lambda_1 == 0 else 1.0 / abs(lambda_1)
    return Diagnosis(
        regime,
        lambda_1,
        band,
        horizon,
        kaplan_yorke_dimension(lam),
        int((lam > 0).sum()),
        int(lam.size),
    )


def diagnosis_values(
    spectra: Mapping[int, np.ndarray], *, margin: float = EDGE_MARGIN
) -> dict[str, float]:
    """Numbers that sum up a trial's latest diagnosis, and its change since the first one.

    ``optuna_lyap._storage`` stores them as user attrs under its own names.

    Args:
        spectra: ``{step: exponents}`` of one trial (as ``optuna_lyap.load_spectra`` returns).
        margin: As in :func:`diagnose`.

    Returns:
        ``{name: value}``, finite floats only: ``regime`` (-1 ordered, 0 edge, 1 chaotic; see
        :data:`REGIME_CODES`), ``memory_horizon`` (steps, at most :data:`MAX_MEMORY_HORIZON`),
        ``ky_dimension``, ``max_change`` (``lambda_1`` at the latest step minus at the first,
        nats per step; 0 with one step) and ``ky_dimension_change``. A value the latest
        spectrum leaves undefined (all NaN) is left out. Empty when there is no spectrum.
    """
    if not spectra:
        return {}
    steps = sorted(spectra)
    last = diagnose(spectra[steps[-1]], margin=margin)
    if last.regime not in REGIME_CODES:
        return {}
    first = diagnose(spectra[steps[0]], margin=margin)
    out = {
        "regime": float(REGIME_CODES[last.regime]),
        "memory_horizon": min(last.memory_horizon, MAX_MEMORY_HORIZON),
        "ky_dimension": last.kaplan_yorke_dimension,
        "max_change": last.lambda_1 - first.lambda_1,
        "ky_dimension_change": last.kaplan_yorke_dimension - first.kaplan_yorke_dimension,
    }
    return {k: float(v) for k, v in out.items() if math.isfinite(v)}


_REGIME_WORDS = {
    "chaotic": "chaotic",
    "edge": "near the edge of chaos",
    "ordered": "ordered",
    "undefined": "undefined (no finite exponent)",
}


def describe(diagnosis: Diagnosis) -> str:
    """One sentence of plain words for a :class:`Diagnosis`."""
    if diagnosis.regime == "undefined":
        return "The spectrum has no finite leading exponent (the estimate diverged)."
    sign = (
        ">"
        if diagnosis.regime == "chaotic"
        else "<"
        if diagnosis.regime == "ordered"
        else "within"
    )
    band = (
        f"+{diagnosis.margin:.3g}"
        if sign == ">"
        else f"-{diagnosis.margin:.3g}"
        if sign == "<"
        else f"+/-{diagnosis.margin:.3g}"
    )
    horizon = (
        "unbounded" if math.isinf(diagnosis.memory_horizon) else f"{diagnosis.memory_horizon:.3g}"
    )
    return (
        f"{_REGIME_WORDS[diagnosis.regime]}: λ1 = {diagnosis.lambda_1:.4g} nats/step "
        f"({sign} {band}); memory horizon 1/|λ1| = {horizon} steps; Kaplan-Yorke "
        f"dimension {diagnosis.kaplan_yorke_dimension:.3g} of {diagnosis.k} exponents, "
        f"{diagnosis.n_positive} positive."
    )


def describe_change(first: Diagnosis, last: Diagnosis) -> str:
    """One sentence on how the dynamics moved between two diagnoses (first -> last)."""
    if first.regime == "undefined" or last.regime == "undefined":
        return f"Regime {first.regime} -> {last.regime}."
    moved = (
        f"stayed {_REGIME_WORDS[last.regime]}"
        if first.regime == last.regime
        else f"moved from {_REGIME_WORDS[first.regime]} to {_REGIME_WORDS[last.regime]}"
    )
    return (
        f"{moved[0].upper()}{moved[1:]}: λ1 {first.lambda_1:.4g} -> {last.lambda_1:.4g} "
        f"({last.lambda_1 - first.lambda_1:+.3g} nats/step), Kaplan-Yorke dimension "
        f"{first.kaplan_yorke_dimension:.3g} -> {last.kaplan_yorke_dimension:.3g}."
    )
