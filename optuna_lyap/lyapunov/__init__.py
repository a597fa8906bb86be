"""Lyapunov spectra of recurrent networks and their diagnosis (no Optuna imports below here)."""

from __future__ import annotations

from optuna_lyap.lyapunov._diagnosis import Diagnosis, diagnose
from optuna_lyap.lyapunov._result import LyapunovSpectrum
from optuna_lyap.lyapunov._spectrum import lyapunov_spectrum

__all__ = ["Diagnosis", "LyapunovSpectrum", "diagnose", "lyapunov_spectrum"]
