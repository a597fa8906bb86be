"""Lyapunov spectra of recurrent networks (no Optuna imports below this package)."""

from __future__ import annotations

from optuna_lyap.lyapunov._result import LyapunovSpectrum
from optuna_lyap.lyapunov._spectrum import lyapunov_spectrum

__all__ = ["LyapunovSpectrum", "lyapunov_spectrum"]
