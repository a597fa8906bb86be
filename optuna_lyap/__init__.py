"""optuna-lyap: prune and steer Optuna studies of recurrent networks by their Lyapunov spectrum."""

from __future__ import annotations

from optuna_lyap.lyapunov import LyapunovSpectrum, lyapunov_spectrum

__version__ = "0.1.0"

__all__ = [
    "LyapunovSpectrum",
    "lyapunov_spectrum",
]
