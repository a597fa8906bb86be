"""Former home of the prediction layer, now :mod:`optuna_lyap._prediction`; kept for imports."""

from __future__ import annotations

from optuna_lyap._prediction import (
    ParamEncoder,
    curve_features,
    fit_aelle,
    rank_correlation,
    refit_size,
)

__all__ = ["ParamEncoder", "curve_features", "fit_aelle", "rank_correlation", "refit_size"]
