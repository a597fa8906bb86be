"""The user attrs read by a person and by optuna-dashboard's plots: the one-line summary and
the dynamics diagnosis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from optuna_lyap._storage._codec import finite_or_none
from optuna_lyap._storage._keys import (
    DIAGNOSIS_ATTRS,
    USER_ATTR_MAX,
    USER_ATTR_PREDICTED,
    USER_ATTR_PREDICTED_STD,
    USER_ATTR_PRIOR_QUANTILE,
    USER_ATTR_PRIOR_TOP10,
    USER_ATTR_REGIME,
)
from optuna_lyap.lyapunov._diagnosis import REGIME_CODES, diagnosis_values

_REGIME_NAMES = {
    code: "edge of chaos" if name == "edge" else name for name, code in REGIME_CODES.items()
}


def summary_line(attrs: Mapping[str, Any]) -> str | None:
    """The :data:`USER_ATTR_SUMMARY` text of a trial's user ``attrs``; None with nothing to say.

    Example: ``"prior: final quantile 0.81, top-10% chance 0.92; predicted 0.31 ± 0.04;
    regime edge of chaos; λ1 0.004"``.
    """
    parts = []
    quantile = finite_or_none(attrs.get(USER_ATTR_PRIOR_QUANTILE))
    if quantile is not None:
        top = finite_or_none(attrs.get(USER_ATTR_PRIOR_TOP10))
        chance = "" if top is None else f", top-10% chance {top:.2f}"
        parts.append(f"prior: final quantile {quantile:.2f}{chance}")
    predicted = finite_or_none(attrs.get(USER_ATTR_PREDICTED))
    if predicted is not None:
        std = finite_or_none(attrs.get(USER_ATTR_PREDICTED_STD))
        parts.append(f"predicted {predicted:.4g}" + ("" if std is None else f" ± {std:.2g}"))
    regime = finite_or_none(attrs.get(USER_ATTR_REGIME))
    if regime is not None and int(regime) in _REGIME_NAMES:
        parts.append(f"regime {_REGIME_NAMES[int(regime)]}")
    lyap_max = finite_or_none(attrs.get(USER_ATTR_MAX))
    if lyap_max is not None:
        parts.append(f"λ1 {lyap_max:.3g}")
    return "; ".join(parts) or None


# --- Keys and records of the pruner, the sampler and the prediction layer ------------------------
# Every attr key below is written by LyapunovPruner, LyapunovSampler or optuna_lyap._prediction;


def diagnosis_attrs(spectra: Mapping[int, np.ndarray]) -> dict[str, float]:
    """The user attrs of a trial's dynamics diagnosis: ``{attr name: finite float}``.

    Args:
        spectra: ``{step: exponents}`` of one trial (as :func:`load_spectra` returns).

    Returns:
        :func:`~optuna_lyap.lyapunov._diagnosis.diagnosis_values` under the names of
        :data:`DIAGNOSIS_ATTRS` (``lyap_regime``, ``lyap_memory_horizon``,
        ``lyap_ky_dimension``, ``lyap_max_change``, ``lyap_ky_dimension_change``).
    """
    return {DIAGNOSIS_ATTRS[name]: value for name, value in diagnosis_values(spectra).items()}
