"""Optuna glue that reads trials' Lyapunov spectra: reporting, the monitor, the pruner."""

from __future__ import annotations

from optuna_lyap._monitor import LyapunovMonitor
from optuna_lyap._prediction import curve_features, fit_aelle
from optuna_lyap._prediction._independence import draws_independently
from optuna_lyap._storage import (
    load_predictions,
    load_spectra,
    report_configuration,
    report_spectrum,
)
from optuna_lyap.pruners._lyapunov import LyapunovPruner
from optuna_lyap.pruners._warnings import PriorBlendWarning

__all__ = [
    "LyapunovMonitor",
    "LyapunovPruner",
    "PriorBlendWarning",
    "curve_features",
    "draws_independently",
    "fit_aelle",
    "load_predictions",
    "load_spectra",
    "report_configuration",
    "report_spectrum",
]
