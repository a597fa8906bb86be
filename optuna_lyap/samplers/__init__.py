"""Optuna glue that steers a study by its trials' Lyapunov spectra: the sampler and its view."""

from __future__ import annotations

from optuna_lyap.samplers._lyapunov import LyapunovSampler
from optuna_lyap.samplers._view import PredictedStudyView, ReadOnlyViewError

__all__ = [
    "LyapunovSampler",
    "PredictedStudyView",
    "ReadOnlyViewError",
]
